"""Readers and writers for the file formats the pipeline meets (OBJ, binvox, CoReNet scenes)."""
