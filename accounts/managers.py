from django.contrib.auth.models import UserManager as DjangoUserManager


class UserManager(DjangoUserManager):
    def create_superuser(self, username, email=None, password=None, **extra_fields):
        # An admin is an operator with the Django admin on top.
        extra_fields.setdefault("role", self.model.Role.OPERATOR)
        return super().create_superuser(username, email, password, **extra_fields)
