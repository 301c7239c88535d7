"""The foundations every part stands on: configuration, months, atomic storage, alerts,
printable text and named crash points. Imports nothing else of powerops."""
