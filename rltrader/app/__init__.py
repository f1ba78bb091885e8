"""The app shell: the command line, one module per command group, and the terminal's progress. The domain never
imports it."""
