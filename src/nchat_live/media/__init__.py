"""Live media: ingest (WHIP, RTMP), transcoding, LL-HLS packaging and serving, WHEP playback, storage, the
media worker.

    ingest/     WHIP (whip.py) and RTMP (rtmp/) publishers
    transcode/  the per-stream pipeline (decode, ladder, H.264/AAC encode, fMP4 mux) and the ladder
    compose/    the program of a stream with guest speakers: layout, video compositor, audio mixer, its thread
    hls/        the packager, the one playlist writer (playlists.py), fMP4 parsing, HLS/replay routes, access
    egress/     WHEP playback (whep.py): the stream relayed to WebRTC viewers without the ladder (relay.py:
                one shared encode)
    storage/    the MediaStorage protocol (base.py): local disk, S3, selection by NCHAT_STORAGE_URL
    worker/     the media worker: MediaManager façade over publishers, guests, leases, orphan sweep, key throttle; the
                StreamObserver hooks; the status follower (control.py), placement, resume
    extras/     recording, DVR, thumbnails, clips, quality metrics: StreamObservers the runtime attaches
    routes.py   every HTTP route of media, for app.py
    webrtc_http.py  the HTTP bits WHIP and WHEP share (CORS, error body, body limit, ICE servers)

No module imports another that imports it back. Between packages: routes and ingest -> worker ->
compose (which imports nothing of media) and transcode -> hls -> storage, except that hls/packager.py
reads transcode/ladder.py's Rendition, and hls/packager.py and transcode/pipeline.py name
worker/resume.py's ResumeState in annotations only.
extras import the worker, never the reverse.
"""
