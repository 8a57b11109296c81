"""Publishers: WHIP (RFC 9725) and RTMP, feeding the media worker."""
