package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	cdccleaner "github.com/cdc-cleaner/cdc-cleaner"
	"github.com/cdc-cleaner/cdc-cleaner/decoder"
	"github.com/cdc-cleaner/cdc-cleaner/replication"
)

// decodeMessage decodes m. A watched column of a type the decoder does not
// know (retyped to a domain while running, say) is looked up in the catalog
// and the message decoded again; lookups that fail are retried until they
// succeed or ctx ends, holding the stream meanwhile.
func (p *Pipeline) decodeMessage(ctx context.Context, dec *decoder.Decoder, m replication.Message) (decoder.Event, error) {
	retry := newBackoff(p.cfg.RetryMin, p.cfg.RetryMax)
	for {
		ev, err := dec.Decode(m.Data)
		var unknown *decoder.UnknownTypeError
		if !errors.As(err, &unknown) {
			return ev, err
		}
		if p.cfg.ResolveType == nil {
			return ev, &decoder.SchemaError{Table: unknown.Table, Column: unknown.Column,
				Problem: fmt.Sprintf("has type OID %d, which the decoder does not know and cannot look up", unknown.OID)}
		}
		typ, found, err := p.cfg.ResolveType(ctx, unknown.OID)
		if err == nil && !found {
			return ev, &decoder.SchemaError{Table: unknown.Table, Column: unknown.Column,
				Problem: fmt.Sprintf("has, at this point of the stream, a type (OID %d) that no longer exists in the catalog (a domain or an extension's type dropped since), so its values cannot be read; remove the column from the configuration to go on, and run cdc-cleaner scan for its files", unknown.OID)}
		}
		if err != nil {
			if ctx.Err() != nil {
				return ev, ctx.Err()
			}
			p.log.Warn().Err(err).Uint32("type_oid", unknown.OID).Str("table", unknown.Table).Str("column", unknown.Column).
				Dur("retry_in", retry.Next()).Msg("look up the type of a watched column; holding the stream and retrying")
			if !retry.Wait(ctx) {
				return ev, ctx.Err()
			}
			continue
		}
		p.log.Info().Uint32("type_oid", unknown.OID).Str("table", unknown.Table).Str("column", unknown.Column).
			Int("kind", int(typ.Kind)).Bool("padded", typ.Padded).Msg("watched column has a new type; read as the catalog describes it")
		p.typesMu.Lock()
		p.types[unknown.OID] = typ
		p.typesMu.Unlock()
		dec.AddType(unknown.OID, typ)
	}
}

// holdLogEvery is how often a held stream says so again.
const holdLogEvery = time.Minute

// hold stops decoding at a schema change the configuration does not fit:
// the transaction that met it, and everything after, stay unconfirmed
// while what came before settles and is confirmed by the stream's status
// updates, which go on. It says when everything before the held change is
// confirmed, the moment to change the configuration and restart. It
// returns when ctx ends or the stream stops.
func (p *Pipeline) hold(ctx context.Context, se *decoder.SchemaError, at cdccleaner.LSN, tr *replication.Tracker, streamDone <-chan struct{}) {
	why := fmt.Sprintf("%v (in the transaction that commits at %s)", se, at)
	p.held.Store(&why)
	p.cfg.Metrics.Held.Set(1)
	fix := "Update the watch entry of " + se.Table + " and restart"
	if se.Missing {
		fix = "If it was renamed, put its new name in the watch entry of " + se.Table + " and restart once the cleaner logs that everything before this change is confirmed; if it was dropped, remove it and restart (cdc-cleaner scan then finds the files it referenced)"
		if p.cfg.ExplainMissing != nil {
			if schema, table, ok := strings.Cut(se.Table, "."); ok {
				if hint := p.cfg.ExplainMissing(ctx, schema, table, se.Column); hint != "" {
					fix = hint
				}
			}
		}
	}
	say := func() {
		p.log.Error().Str("table", se.Table).Str("column", se.Column).Stringer("commit_lsn", at).
			Msgf("%v: the configuration no longer fits the table, so changes from here on are held (the slot retains WAL). %s; cdc-cleaner check says what does not fit", se, fix)
	}
	say()
	t := time.NewTicker(holdLogEvery)
	defer t.Stop()
	poll := time.NewTicker(time.Second)
	defer poll.Stop()
	settled := false
	for {
		select {
		case <-ctx.Done():
			return
		case <-streamDone:
			return
		case <-t.C:
			say()
		case <-poll.C:
			if !settled && tr.Pending() <= 1 {
				settled = true
				p.log.Warn().Str("table", se.Table).Str("column", se.Column).Stringer("confirmed", tr.Confirmed()).
					Msg("everything before the held change is confirmed: change the configuration and restart now")
			}
		}
	}
}

// missedChanges gathers, for the open transaction, the changes whose old
// values did not arrive and the tables it truncated, per storage and
// source column, to record them at its commit.
type missedChanges struct {
	byKey map[missedKey]*missedCount
	order []missedKey
}

type missedKey struct{ storage, source, reason string }

type missedCount struct {
	ops    map[string]int // "update", "delete", "truncate"
	detail string         // why, for people
}

func newMissedChanges() *missedChanges { return &missedChanges{byKey: map[missedKey]*missedCount{}} }

func (m *missedChanges) count(k missedKey, op, detail string) {
	c := m.byKey[k]
	if c == nil {
		c = &missedCount{ops: map[string]int{}, detail: detail}
		m.byKey[k] = c
		m.order = append(m.order, k)
	}
	c.ops[op]++
}

// add counts a change that did not carry a watched column's old value.
func (m *missedChanges) add(mc decoder.Missed) {
	m.count(missedKey{mc.Storage, mc.Source, decoder.ReasonOldValuesMissing}, mc.Op, mc.Reason)
}

// truncated counts a TRUNCATE of table ("schema.table") for each of its
// watched columns.
func (m *missedChanges) truncated(columns []cdccleaner.Column, table string) {
	for _, c := range columns {
		if !c.Protect && c.Schema+"."+c.Table == table {
			m.count(missedKey{c.Storage, c.Source(), decoder.ReasonTruncated}, "truncate", "TRUNCATE sends no rows")
		}
	}
}

// failures returns what was gathered as batches of failures to record,
// one batch per storage, stamped with the open transaction, and forgets it.
func (m *missedChanges) failures(dec *decoder.Decoder) []*batch {
	if len(m.order) == 0 {
		return nil
	}
	byStorage := map[string]*batch{}
	var out []*batch
	for _, k := range m.order {
		c := m.byKey[k]
		b := byStorage[k.storage]
		if b == nil {
			b = &batch{storage: k.storage}
			byStorage[k.storage] = b
			out = append(out, b)
		}
		b.failures = append(b.failures, cdccleaner.Failure{
			Candidate: dec.Candidate(cdccleaner.Ref{Storage: k.storage}, k.source),
			Reason:    k.reason,
			Detail:    missedDetail(k, c),
		})
	}
	clear(m.byKey)
	m.order = m.order[:0]
	return out
}

// missedDetail says what was missed, why, and what to do about it.
func missedDetail(k missedKey, c *missedCount) string {
	ops := make([]string, 0, len(c.ops))
	for op, n := range c.ops {
		ops = append(ops, fmt.Sprintf("%d %s", n, strings.ToUpper(op)))
	}
	slices.Sort(ops)
	table, column := k.source, ""
	if i := strings.LastIndexByte(k.source, '.'); i >= 0 {
		table, column = k.source[:i], k.source[i+1:]
	}
	if k.reason == decoder.ReasonTruncated {
		return fmt.Sprintf("%s of %s in this transaction (%s): the files its rows referenced in column %q cannot be named; cdc-cleaner scan --storage %s finds them",
			strings.Join(ops, " and "), table, c.detail, column, k.storage)
	}
	return fmt.Sprintf("%s of %s in this transaction did not carry the old value of column %q (%s), so the files they orphaned cannot be named: run cdc-cleaner setup (REPLICA IDENTITY FULL), then cdc-cleaner scan --storage %s finds them",
		strings.Join(ops, " and "), table, column, c.detail, k.storage)
}
