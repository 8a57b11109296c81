"""LL-HLS: packaging, the one playlist writer, fMP4 boxes, and the HTTP routes serving live and recorded media."""
