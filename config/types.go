package config

import (
	"fmt"
	"time"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
)

// Config is the whole configuration file. Field tags name the YAML keys of
// the contract in DESIGN.md; keep them as they are.
type Config struct {
	Postgres    Postgres            `yaml:"postgres"`
	Storages    map[string]*Storage `yaml:"storages"`
	Watch       []*Watch            `yaml:"watch"`
	Protect     []*Watch            `yaml:"protect"`
	DeleteDelay time.Duration       `yaml:"delete_delay"`
	DryRun      bool                `yaml:"dry_run"`
	HTTP        HTTP                `yaml:"http"`
	Log         Log                 `yaml:"log"`

	// envSet maps each setting an environment variable set, by its path
	// in Validate's errors ("storages.media.type"), to that variable, so
	// that an error can say where a value came from.
	envSet map[string]string
}

// Postgres says how to reach the database and which slot and publication to use.
type Postgres struct {
	URL            string        `yaml:"url"`
	Slot           string        `yaml:"slot"`
	Publication    string        `yaml:"publication"`
	StatusInterval time.Duration `yaml:"status_interval"`
	MaxLagWarn     ByteSize      `yaml:"max_lag_warn"`
	// FailoverSlot makes setup create the slot as a failover slot on
	// PostgreSQL 17 and later (pg_create_logical_replication_slot's
	// failover), so that standbys that synchronize slots keep it and a
	// promoted standby streams on from where the cleaner was. Default true;
	// older servers have no failover slots and ignore it.
	FailoverSlot bool `yaml:"failover_slot"`
}

// Storage is one place files live.
type Storage struct {
	Type string `yaml:"type"` // "local" or "s3"

	// local
	Root           string `yaml:"root"`
	PruneEmptyDirs bool   `yaml:"prune_empty_dirs"`

	// s3
	Bucket    string `yaml:"bucket"`
	Prefix    string `yaml:"prefix"`
	Region    string `yaml:"region"`
	Endpoint  string `yaml:"endpoint"`
	PathStyle bool   `yaml:"path_style"`
	// Concurrency is how many DeleteObjects requests may be in flight at
	// once (s3 only; default 4).
	Concurrency int `yaml:"concurrency"`

	// any type
	Keep []string `yaml:"keep"`
	// Messages honours cdc_cleaner logical decoding messages naming this
	// storage. Any role that can log in may emit one, so it is off by
	// default.
	Messages       bool          `yaml:"messages"`
	Trash          bool          `yaml:"trash"`
	TrashPrefix    string        `yaml:"trash_prefix"`
	TrashRetention time.Duration `yaml:"trash_retention"`
}

// Watch is one table whose columns hold file paths: each of Columns, or the
// path that the template Path builds from several.
type Watch struct {
	Table       string            `yaml:"table"`
	Columns     []string          `yaml:"columns"`
	Path        string            `yaml:"path"`
	Derived     []string          `yaml:"derived"`
	Match       map[string]string `yaml:"match"`
	StripPrefix []string          `yaml:"strip_prefix"`
	JSONPath    string            `yaml:"json_path"`
	Storage     string            `yaml:"storage"`

	// Filled by Validate from Table and Columns.
	Schema   string   `yaml:"-"` // unquoted schema name, as in pg_namespace
	Name     string   `yaml:"-"` // unquoted table name, as in pg_class
	ColNames []string `yaml:"-"` // unquoted column names, as in pg_attribute
	// JSONSteps is JSONPath parsed by ParseJSONPath; nil when JSONPath is empty.
	JSONSteps cdccleaner.JSONPath `yaml:"-"`
	// Template is Path parsed; nil when Path is empty.
	Template *cdccleaner.Template `yaml:"-"`
	// DerivedTemplates are Derived parsed, in order.
	DerivedTemplates []cdccleaner.Template `yaml:"-"`
	// MatchConds is Match with its columns parsed, by column name.
	MatchConds []cdccleaner.Match `yaml:"-"`
}

// HTTP configures the metrics and health endpoints.
type HTTP struct {
	Listen string `yaml:"listen"`
}

// Log configures logging.
type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
}

// Columns returns every column of a validated configuration as the rest of
// the cleaner shares it: the watch entries' columns in order, then the
// protect entries'. Their catalog fields are left for inspection to fill.
func (c *Config) Columns() []cdccleaner.Column {
	var out []cdccleaner.Column
	for i := range c.Watch {
		out = append(out, c.EntryColumns("watch", i)...)
	}
	for i := range c.Protect {
		out = append(out, c.EntryColumns("protect", i)...)
	}
	return out
}

// EntryColumns returns the columns of entry i of list ("watch" or
// "protect") of a validated configuration.
func (c *Config) EntryColumns(list string, i int) []cdccleaner.Column {
	// Index only the list asked for: the other may be shorter.
	protect := list == "protect"
	var w *Watch
	if protect {
		w = c.Protect[i]
	} else {
		w = c.Watch[i]
	}
	entry := cdccleaner.Column{Storage: w.Storage, Schema: w.Schema, Table: w.Name, JSONPath: w.JSONSteps, Protect: protect,
		Derived: w.DerivedTemplates, Match: w.MatchConds, StripPrefix: w.StripPrefix}
	if w.Template != nil {
		entry.Template, entry.Field = w.Template, fmt.Sprintf("%s[%d].path", list, i)
		return []cdccleaner.Column{entry}
	}
	out := make([]cdccleaner.Column, 0, len(w.ColNames))
	for j, name := range w.ColNames {
		c := entry
		c.Name, c.Field = name, fmt.Sprintf("%s[%d].columns[%d]", list, i, j)
		out = append(out, c)
	}
	return out
}
