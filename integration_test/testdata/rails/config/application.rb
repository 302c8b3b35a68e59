# Minimal Rails 6.1 app, loaded from Debian's system gems (no Bundler).
# Env: DATABASE_URL, STORAGE_ROOT (required); JOB_ADAPTER, TRACK_VARIANTS,
# VARIANT_PROCESSOR, PHOTO_DEPENDENT, LOG_LEVEL (optional; see README.md).
require "rails"
require "active_record/railtie"
require "active_job/railtie"
require "action_controller/railtie"
require "active_storage/engine"

module Testbed
  class Application < Rails::Application
    config.load_defaults 6.1
    config.root = File.expand_path("..", __dir__)
    config.eager_load = false
    # Fixed secret so development mode does not write tmp/development_secret.txt.
    config.secret_key_base = "cdc-cleaner-testbed-" + "0" * 64
    # Log to stderr, never to log/development.log.
    config.logger = ActiveSupport::Logger.new($stderr)
    config.log_level = ENV.fetch("LOG_LEVEL", "warn").to_sym

    config.active_storage.service = :local
    config.active_storage.track_variants = ENV["TRACK_VARIANTS"] != "0" # load_defaults 6.1 => true
    config.active_storage.variant_processor = ENV.fetch("VARIANT_PROCESSOR", "mini_magick").to_sym
    config.active_job.queue_adapter = ENV["JOB_ADAPTER"].to_sym if ENV["JOB_ADAPTER"].present? # Rails default: async
  end
end
