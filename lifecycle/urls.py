from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.urls import include, path


@login_not_required
def favicon(request: HttpRequest) -> HttpResponsePermanentRedirect:
    # Resolved per request: in production the hashed name exists only after collectstatic.
    return HttpResponsePermanentRedirect(static("favicon.svg"))


urlpatterns = [
    path("favicon.ico", favicon),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("", include("api.urls")),
    path("segments/", include("segments.urls")),
    # Public pages linked from plan emails (signed tokens, no login).
    path("c/", include("campaigns.public_urls")),
    path("imports/", include("imports.urls")),
    path("plans/", include("campaigns.urls")),
    path("", include("customers.urls")),
    path("", include("tracking.urls")),
    path("", include("success.urls")),
]
