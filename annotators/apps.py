from django.apps import AppConfig


class AnnotatorsConfig(AppConfig):
    name = "annotators"
    verbose_name = "Annotators"

    def ready(self) -> None:
        from . import signals  # noqa: F401
