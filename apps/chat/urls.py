from django.urls import path

from apps.chat import api, views_pages

urlpatterns = [
    path("chat/", views_pages.chat_page, name="chat"),
    path("chat/embed/", views_pages.chat_embed_page, name="chat-embed"),
    path("chat/embed-demo/", views_pages.embed_demo_page, name="chat-embed-demo"),
    path("api/chat/conversations/", api.ConversationCreateView.as_view(), name="api-conversation-create"),
    path("api/chat/messages/", api.MessagesView.as_view(), name="api-messages"),
    path("api/chat/feedback/", api.FeedbackView.as_view(), name="api-feedback"),
    path("api/chat/operator-request/", api.OperatorRequestView.as_view(), name="api-operator-request"),
]
