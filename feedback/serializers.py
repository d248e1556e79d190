from rest_framework import serializers

from .imports.kinds import SOURCE_MAX
from .imports.readers import FORMATS
from .models import Project


class ProjectSerializer(serializers.ModelSerializer):
    class Meta:
        model = Project
        fields = [
            "slug",
            "name",
            "guidelines",
            "labels_per_item",
            "lease_minutes",
            "allow_tie",
            "allow_both_bad",
            "strength_mode",
            "rationale_mode",
            "hide_model_names",
            "gold_rate",
            "max_pairs_per_prompt",
            "comparison_mode",
            "created_at",
        ]
        read_only_fields = ["created_at"]


class ImportRequestSerializer(serializers.Serializer):
    file = serializers.FileField()
    format = serializers.ChoiceField(choices=FORMATS, required=False)
    source = serializers.CharField(required=False, max_length=SOURCE_MAX)
    skip_invalid = serializers.BooleanField(required=False, default=False)


class ImportSummarySerializer(serializers.Serializer):
    file = serializers.CharField()
    kind = serializers.CharField()
    rows = serializers.IntegerField()
    imported = serializers.IntegerField()
    already_present = serializers.IntegerField()
    skipped = serializers.IntegerField()
    skipped_rows = serializers.ListField(child=serializers.DictField())
    created = serializers.DictField(child=serializers.IntegerField())


class ShownResponseSerializer(serializers.Serializer):
    text = serializers.CharField()
    model = serializers.CharField(allow_null=True, help_text="Null when the project hides model names.")


class NextItemSerializer(serializers.Serializer):
    assignment_id = serializers.IntegerField()
    comparison = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=["pair", "ranking"])
    messages = serializers.ListField(child=serializers.DictField())
    responses = serializers.DictField(child=ShownResponseSerializer(), help_text="In display order: a, b, …")
    lease_expires_at = serializers.DateTimeField()


class LabelRequestSerializer(serializers.Serializer):
    choice = serializers.JSONField(
        help_text='Pairs: "a", "b", "tie" or "both_bad" (display keys). Rankings: keys best first, e.g. '
        '["b", ["a", "c"], "d"] (a nested list is a tie).'
    )
    strength = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=3)
    rationale = serializers.CharField(required=False, allow_blank=True, default="")
    time_spent_ms = serializers.IntegerField(required=False, allow_null=True, min_value=0)


class LabelResultSerializer(serializers.Serializer):
    label_id = serializers.IntegerField()
    assignment_id = serializers.IntegerField()
    comparison = serializers.IntegerField()
    created = serializers.BooleanField(help_text="False when this was a repeat of an earlier submit.")
    next = NextItemSerializer(required=False, allow_null=True, help_text="With ?next=1: the next item, or null.")


class ExportRequestSerializer(serializers.Serializer):
    """The same options as `manage.py export_preferences` (see feedback/exports/options.py)."""

    kind = serializers.ChoiceField(choices=["pairs", "kto", "labels", "rankings", "demonstrations"], default="pairs")
    format = serializers.ChoiceField(choices=["hf", "parquet", "jsonl", "csv"], default="parquet")
    style = serializers.ChoiceField(choices=["standard", "conversational"], default="standard")
    aggregation = serializers.ChoiceField(choices=["majority", "dawid_skene"], default="majority")
    include_ties = serializers.BooleanField(default=False)
    include_both_bad = serializers.BooleanField(default=False)
    min_agreement = serializers.FloatField(default=0.0, min_value=0, max_value=1)
    min_labels = serializers.IntegerField(default=1, min_value=1)
    min_gold_accuracy = serializers.FloatField(required=False, allow_null=True, min_value=0, max_value=1)
    since = serializers.DateField(required=False, allow_null=True)
    until = serializers.DateField(required=False, allow_null=True)
    segment = serializers.CharField(required=False, allow_blank=True, default="")
    models = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    sources = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    exclude = serializers.ListField(child=serializers.CharField(), required=False, default=list)
    test_fraction = serializers.FloatField(default=0.1, min_value=0, max_value=0.99)
    seed = serializers.IntegerField(default=0)
