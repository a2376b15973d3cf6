"""Package data of pyrospan_launch: the bootstrap directory.  Never imported at run time."""
