# Rules of the scannet data (filled in by the work on it).
