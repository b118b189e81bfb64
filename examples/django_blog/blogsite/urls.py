from django.urls import path

from blogsite import views

urlpatterns = [
    path("", views.index),
    path("posts", views.posts),
    path("posts/<str:post_id>", views.post),
    path("posts/<str:post_id>/history", views.post_history),
    path("users", views.users),
    path("users/<str:user_id>", views.user),
]
