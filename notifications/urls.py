from django.urls import path

from . import api

urlpatterns = [
    path("", api.NotificationListView.as_view(), name="api-notifications"),
    path("<int:pk>/read/", api.NotificationReadView.as_view(), name="api-notification-read"),
    path("read_all/", api.NotificationReadAllView.as_view(), name="api-notifications-read-all"),
    path("push/key/", api.PushKeyView.as_view(), name="api-push-key"),
    path("push/subscriptions/", api.PushSubscriptionView.as_view(), name="api-push-subscriptions"),
]
