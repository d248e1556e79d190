"""Django-free ML code: receives plain data, returns plain results (see ../shared/STYLE.md)."""
