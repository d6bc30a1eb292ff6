# Rules of the corenet_release data (filled in by the work on it).
