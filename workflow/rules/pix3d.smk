# Rules of the pix3d data (filled in by the work on it).
