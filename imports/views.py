from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from customers.roles import Role, role_required
from imports import formats, services
from imports.forms import ImportForm
from imports.models import ImportRun
from imports.selectors import imports_recent

IMPORTERS = (Role.MARKETER, Role.ADMIN)


@role_required(*IMPORTERS)
def import_page(request: HttpRequest) -> HttpResponse:
    """Upload a file (POST) and list the latest imports."""
    form = ImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        run = services.import_start(
            kind=form.cleaned_data["kind"],
            mode=form.cleaned_data["mode"],
            upload=form.cleaned_data["file"],
            source=form.cleaned_data["source"],
            user=request.user,
        )
        return redirect("import-detail", run_id=run.pk)
    return render(
        request,
        "imports/import.html",
        {"form": form, "formats": formats.FORMATS.values(), **_list_context()},
    )


def _list_context() -> dict:
    runs = list(imports_recent())
    return {"runs": runs, "any_active": any(run.is_active for run in runs)}


@role_required(*IMPORTERS)
def import_list(request: HttpRequest) -> HttpResponse:
    """The recent-imports table; refreshes itself while an import runs."""
    return render(request, "imports/_runs.html", _list_context())


@role_required(*IMPORTERS)
def import_detail(request: HttpRequest, run_id: int) -> HttpResponse:
    run = get_object_or_404(ImportRun.objects.select_related("created_by"), pk=run_id)
    return render(request, "imports/detail.html", {"run": run})


@role_required(*IMPORTERS)
def import_status(request: HttpRequest, run_id: int) -> HttpResponse:
    """The progress/result card of one import (htmx polls it while the import runs)."""
    run = get_object_or_404(ImportRun.objects.select_related("created_by"), pk=run_id)
    return render(request, "imports/_status.html", {"run": run})


@role_required(*IMPORTERS)
def import_errors(request: HttpRequest, run_id: int) -> FileResponse:
    """The import's error file: row, column, value, message."""
    run = get_object_or_404(ImportRun, pk=run_id)
    if not run.error_file:
        raise Http404("This import has no error file.")
    return FileResponse(
        run.error_file.open("rb"),
        as_attachment=True,
        filename=f"import-{run.pk}-errors.csv",
        content_type="text/csv",
    )


@role_required(*IMPORTERS)
def import_template(request: HttpRequest, kind: str) -> HttpResponse:
    """An example file: the header and two rows, to start from."""
    fmt = formats.FORMATS.get(kind)
    if fmt is None:
        raise Http404("No such import format.")
    response = HttpResponse(formats.example_csv(fmt), content_type="text/csv")
    response["Content-Disposition"] = f'attachment; filename="{kind}-example.csv"'
    return response
