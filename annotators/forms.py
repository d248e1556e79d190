from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm

from .models import Membership


class MemberAddForm(forms.Form):
    username = forms.CharField(max_length=150)
    password = forms.CharField(
        required=False,
        widget=forms.PasswordInput,
        help_text="Only to create a new account; leave empty for an existing one.",
    )
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.ANNOTATOR)
    attributes = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text="Segments, one key=value per line."
    )


class MembershipForm(forms.Form):
    role = forms.ChoiceField(choices=Membership.Role.choices)
    attributes = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))


class InvitationForm(forms.Form):
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.ANNOTATOR)


class SignUpForm(UserCreationForm):
    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ["username"]
