from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm

from .models import Membership


class MemberAddForm(forms.Form):
    # The user model's rules (length, allowed characters) are checked by services.member_add.
    username = forms.CharField(max_length=get_user_model()._meta.get_field("username").max_length)
    password = forms.CharField(
        required=False,
        widget=forms.PasswordInput,
        help_text="Only to create a new account; leave empty to add someone from a project you manage.",
    )
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.ANNOTATOR)
    attributes = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Segments in this project, one key=value per line.",
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
