-- A Django-style table for the docker-compose playground.
CREATE TABLE IF NOT EXISTS gallery_photo (
    id bigserial PRIMARY KEY,
    title varchar(200) NOT NULL DEFAULT '',
    image varchar(100) NOT NULL DEFAULT '',
    thumbnail varchar(100) NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS gallery_photo_image_idx ON gallery_photo (image);
CREATE INDEX IF NOT EXISTS gallery_photo_thumbnail_idx ON gallery_photo (thumbnail);
