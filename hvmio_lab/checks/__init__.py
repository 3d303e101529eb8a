"""Exercise self-checks: ``check_<chapter>_<n>(answer)`` prints ✓ or a hint; ``reveal_<chapter>_<n>()``
shows the worked solution."""
