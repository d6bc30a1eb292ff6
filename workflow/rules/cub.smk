# Rules of the cub data (filled in by the work on it).
