from django.urls import path

from blogsite import views

urlpatterns = [
    path("", views.index),
    path("posts", views.posts),
    path("posts/<str:post_id>", views.post),
    path("users", views.users),
    path("users/<str:user_id>", views.user),
]
