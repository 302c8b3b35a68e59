# Drives the testbed app as a user's code would. One JSON object per line on stdout.
#   ruby drive.rb migrate | schema | state | attach [NAME] | replace ID | destroy ID
#                 | variant ID | delete_rows ID
# Env: DATABASE_URL, STORAGE_ROOT (required); see README.md for the rest.
require_relative "config/environment"
require "json"
require "stringio"
require "zlib"

def out(obj)
  $stdout.puts JSON.generate(obj)
  $stdout.flush
end

# A 16x16 PNG of one random colour, so every upload has a new checksum.
def png(size = 16)
  chunk = ->(type, data) { [data.bytesize].pack("N") + type + data + [Zlib.crc32(type + data)].pack("N") }
  row = ([0] + Array.new(3) { rand(256) } * size).pack("C*")
  "\x89PNG\r\n\x1a\n".b +
    chunk.("IHDR".b, [size, size, 8, 2, 0, 0, 0].pack("NNC5")) +
    chunk.("IDAT".b, Zlib::Deflate.deflate(row * size)) +
    chunk.("IEND".b, "".b)
end

def upload(name)
  { io: StringIO.new(png), filename: "#{name}.png", content_type: "image/png" }
end

def path_for(key)
  ActiveStorage::Blob.service.path_for(key)
end

def blob_info(blob)
  return nil unless blob
  { blob_id: blob.id, key: blob.key, service_name: blob.service_name, filename: blob.filename.to_s,
    byte_size: blob.byte_size, path: path_for(blob.key), file_exists: File.exist?(path_for(blob.key)),
    row_exists: ActiveStorage::Blob.exists?(blob.id) }
end

def photo(id)
  Photo.find(Integer(id))
end

# The async adapter (Rails' default) runs jobs on a thread pool; a long-running app would finish
# them, so wait for them (here and before this short-lived process exits).
def drain_jobs
  adapter = ActiveJob::Base.queue_adapter
  adapter.shutdown(wait: true) if adapter.respond_to?(:shutdown)
end
at_exit { drain_jobs }

def job_info
  { queue_adapter: ActiveJob::Base.queue_adapter.class.name.demodulize,
    dependent: Photo.reflect_on_attachment(:image).options[:dependent] }
end

# A blob and the blobs of its tracked variants (collect before replacing/destroying).
def with_variants(blob)
  [blob, *blob.variant_records.map { |r| r.image.blob }]
end

# Their state right after the call, and again once queued jobs have run.
def before_after(blobs)
  now = blobs.map { |b| blob_info(b) }
  drain_jobs
  { old: now.first, old_variants: now.drop(1), after_jobs: blobs.map { |b| blob_info(b) } }
end

cmd, arg = ARGV
case cmd
when "migrate"
  require "active_record/migration"
  ActiveRecord::Migration.verbose = false # keep stdout JSON-only
  # Active Storage's own migration from the installed gem (what
  # `rails active_storage:install` copies into an app), then the app's.
  paths = [ActiveStorage::Engine.root.join("db/migrate").to_s, Rails.root.join("db/migrate").to_s]
  ctx = ActiveRecord::MigrationContext.new(paths, ActiveRecord::SchemaMigration)
  ctx.migrate
  out(cmd: cmd, versions: ctx.get_all_versions)
when "schema"
  c = ActiveRecord::Base.connection
  %w[active_storage_blobs active_storage_attachments active_storage_variant_records photos].each do |t|
    out(table: t,
        columns: c.columns(t).map { |col| { name: col.name, type: col.sql_type, null: col.null } },
        primary_key: c.primary_key(t),
        indexes: c.indexes(t).map { |i| { name: i.name, columns: i.columns, unique: i.unique } },
        foreign_keys: c.foreign_keys(t).map { |f| { column: f.column, to_table: f.to_table, primary_key: f.primary_key } })
  end
when "state"
  blobs = ActiveStorage::Blob.order(:id).to_a
  known = blobs.map { |b| path_for(b.key) }
  blobs.each do |b|
    att = b.attachments.map { |a| "#{a.record_type}##{a.record_id}.#{a.name}" }
    out(blob_info(b).merge(attached_to: att))
  end
  root = ActiveStorage::Blob.service.root
  Dir.glob(File.join(root, "**", "*")).select { |f| File.file?(f) }.sort.each do |f|
    out(file: f, relative: f.delete_prefix("#{root}/"), has_blob_row: known.include?(f))
  end
when "attach"
  name = arg || "photo"
  p = Photo.create!(name: name, image: upload(name))
  out({ cmd: cmd, photo_id: p.id }.merge(blob_info(p.image.blob)))
when "replace"
  p = photo(arg)
  old = with_variants(p.image.blob)
  p.image.attach(upload("#{p.name}-new"))
  out({ cmd: cmd, photo_id: p.id, new: blob_info(p.reload.image.blob) }.merge(before_after(old), job_info))
when "destroy"
  p = photo(arg)
  old = with_variants(p.image.blob)
  p.destroy!
  out({ cmd: cmd, photo_id: p.id }.merge(before_after(old), job_info))
when "variant"
  p = photo(arg)
  v = p.image.variant(resize_to_limit: [10, 10]).processed
  info = { cmd: cmd, photo_id: p.id, original: blob_info(p.image.blob), variant_class: v.class.name }
  if v.is_a?(ActiveStorage::VariantWithRecord) # track_variants = true (load_defaults 6.1)
    rec = p.image.blob.variant_records.find_by!(variation_digest: v.variation.digest)
    info.merge!(variant_record_id: rec.id, variation_digest: rec.variation_digest, variant_blob: blob_info(v.image.blob))
  else # track_variants = false: no rows at all, key is variants/<blob key>/<sha256(variation key)>
    info.merge!(variant_key: v.key, path: path_for(v.key), file_exists: File.exist?(path_for(v.key)))
  end
  out(info)
when "delete_rows"
  # Remove the photo and all its Active Storage rows with SQL deletes (no callbacks, no purge):
  # the rows vanish, the files stay. This is what an external cleaner has to clean up.
  p = photo(arg)
  blobs = with_variants(p.image.blob)
  records = blobs.first.variant_records.ids
  legacy = Dir.glob(File.join(path_for("variants/#{blobs.first.key}"), "*")) # track_variants = false
  ActiveRecord::Base.transaction do
    ActiveStorage::Attachment.where(record_type: "ActiveStorage::VariantRecord", record_id: records).delete_all
    ActiveStorage::VariantRecord.where(id: records).delete_all
    ActiveStorage::Attachment.where(record: p).delete_all
    ActiveStorage::Blob.where(id: blobs.map(&:id)).delete_all
    Photo.where(id: p.id).delete_all
  end
  out(cmd: cmd, photo_id: p.id, blob: blob_info(blobs.first), variant_blobs: blobs.drop(1).map { |b| blob_info(b) },
      legacy_variant_files: legacy)
else
  warn "usage: ruby drive.rb migrate|schema|state|attach [NAME]|replace ID|destroy ID|variant ID|delete_rows ID"
  exit 2
end
