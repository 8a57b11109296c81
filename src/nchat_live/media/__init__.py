"""Live media: ingest (WHIP, RTMP), transcoding, LL-HLS packaging and serving, storage, the media worker.

    ingest/     WHIP (whip.py) and RTMP (rtmp/) publishers
    transcode/  the per-stream pipeline (decode, ladder, H.264/AAC encode, fMP4 mux) and the ladder
    hls/        the packager, the one playlist writer (playlists.py), fMP4 parsing, HLS/replay routes, access
    storage/    the MediaStorage protocol (base.py): local disk, S3, selection by NCHAT_STORAGE_URL
    worker/     the media worker: MediaManager façade over publishers, leases, orphan sweep, key throttle; the
                StreamObserver hooks; the status follower (control.py), placement, resume
    extras/     recording, DVR, thumbnails, clips, quality metrics: StreamObservers the runtime attaches
    routes.py   every HTTP route of media, for app.py

Imports flow one way between packages: routes and ingest -> worker -> transcode -> hls -> storage
(hls/packager and transcode/pipeline name worker/resume.py's ResumeState for annotations only);
extras import the worker, never the reverse.
"""
