from django.contrib import admin

from accounts.models import LoginThrottle


@admin.register(LoginThrottle)
class LoginThrottleAdmin(admin.ModelAdmin):
    """What is paused and why. Deleting a row lifts its pause; nothing else is editable."""

    list_display = ("scope", "key", "failures", "last_failure", "blocked_until")
    list_filter = ("scope",)
    search_fields = ("key",)
    ordering = ("-last_failure",)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
