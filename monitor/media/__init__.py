"""Audio clips and spectrograms per closed detection (writer, encoders, image, retention)."""
