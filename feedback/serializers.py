from rest_framework import serializers

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
    source = serializers.CharField(required=False, max_length=120)
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
