"""`manage.py register_model NAME SOURCE [--kind base|adapter|reward] [--parent NAME] [--hub]`."""

from django.core.management.base import BaseCommand, CommandError

from training.models import RegisteredModel
from training.registry import RegistryError, model_default, model_register


class Command(BaseCommand):
    help = (
        "Register a local Hugging Face folder (safetensors weights only) or, with --hub, a hub id (needs a network) "
        "so jobs can load it by NAME. The files are copied under the data directory. "
        "`register_model --default` registers SmolLM2-135M-Instruct (converted from its GGUF on first use)."
    )

    def add_arguments(self, parser):
        parser.add_argument("name", nargs="?", help="Registry name (letters, digits, - and _).")
        parser.add_argument("source", nargs="?", help="Folder path, or hub id with --hub.")
        parser.add_argument("--kind", choices=RegisteredModel.Kind.values, default=RegisteredModel.Kind.BASE)
        parser.add_argument("--parent", help="For adapters and reward models: the registered base model.")
        parser.add_argument("--hub", action="store_true", help="SOURCE is a Hugging Face hub id; download it.")
        parser.add_argument("--default", action="store_true", help="Register the default base model.")

    def handle(self, *args, **opts):
        if opts["default"]:
            model = model_default()
        else:
            if not opts["name"] or not opts["source"]:
                raise CommandError("give NAME and SOURCE (or --default)")
            try:
                model = model_register(
                    name=opts["name"], source=opts["source"], kind=opts["kind"], parent=opts["parent"], hub=opts["hub"]
                )
            except RegistryError as exc:
                raise CommandError(str(exc)) from None
        size = f"{model.parameter_count:,} parameters" if model.parameter_count else "size known after first load"
        self.stdout.write(f"registered {model.name} ({model.kind}, {size}) at {model.path}")
