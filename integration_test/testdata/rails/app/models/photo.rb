class Photo < ActiveRecord::Base
  # Rails' default is dependent: :purge_later. PHOTO_DEPENDENT=false makes replace/destroy
  # leave the old blob (row and file) alone, as `has_one_attached :image, dependent: false` does.
  has_one_attached :image, dependent: (ENV["PHOTO_DEPENDENT"] == "false" ? false : :purge_later)
end
