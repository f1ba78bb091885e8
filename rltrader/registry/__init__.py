"""The model registry: versions with lineage, the champion, events, the bar history fingerprint, the paired test
that decides a promotion."""
