"""Where media files live: the MediaStorage protocol, the local disk, S3."""
