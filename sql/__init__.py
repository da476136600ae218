"""The metrics SQL, shipped as package data: abplatform.resources.sql_dir() is this folder."""
