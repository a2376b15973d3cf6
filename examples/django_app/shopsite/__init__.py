"""A minimal Django project for the pyrospan-run examples: a reporting site with no database."""
