from django.conf import settings
from django.db.models.signals import post_save
from django.dispatch import receiver

from .models import Profile


@receiver(post_save, sender=settings.AUTH_USER_MODEL)
def profile_for_new_user(sender, instance, created: bool, **kwargs) -> None:
    """Every person has a profile, so segment attributes can be set without a special case."""
    if created:
        Profile.objects.get_or_create(user=instance)
