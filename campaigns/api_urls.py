"""Plan routes under /api/v1/ (included from api/urls.py)."""

from rest_framework.routers import SimpleRouter

from campaigns import api

router = SimpleRouter()
router.register("plans", api.PlanViewSet, basename="api-plan")
router.register("enrollments", api.EnrollmentViewSet, basename="api-enrollment")

urlpatterns = router.urls
