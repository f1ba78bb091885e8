"""The app shell: the command line, the terminal's progress, the requests every entry point takes, the
benchmark and comparison commands. The domain never imports it."""
