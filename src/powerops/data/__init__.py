"""The data's walk from the source to a dataset version: read a month (source), write it as a
raw batch, check it (validation, quarantine), publish it (datasets, dvcstore, catalog), and
shape it into the modelling table (table). `stages` holds the entry points. Uses core only."""
