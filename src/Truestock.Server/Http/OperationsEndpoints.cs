using System.Globalization;
using Truestock.Server.Engine;

namespace Truestock.Server.Http;

internal static class OperationsEndpoints
{
    private const int PageSizeDefault = 100;
    private const int PageSizeMax = 1000;

    public static void MapOperations(this IEndpointRouteBuilder app)
    {
        app.MapGet("/health/live", () => Results.Ok(new { status = "live" })).WithTags("Operations").WithSummary("200 while the process runs.");
        app.MapGet("/health/ready", (Sequencer engine) =>
            {
                var role = engine.Role;
                string? problem = null;
                if (role == EngineRole.Writer)
                {
                    try
                    {
                        engine.Journal.Ping();
                    }
                    catch (System.Data.Common.DbException ex)
                    {
                        // The writer cannot reach its store: it will not acknowledge writes, so it is not ready.
                        problem = ex.Message;
                    }
                }
                var ready = role == EngineRole.Writer && problem is null;
                var body = new
                {
                    status = ready ? "ready" : "not-ready",
                    role = role.ToString().ToLowerInvariant(),
                    journalSeq = engine.AppliedSeq,
                    stalenessSeconds = Math.Round(engine.Staleness.TotalSeconds, 3),
                    detail = problem,
                };
                return ready ? Results.Ok(body) : Results.Json(body, statusCode: StatusCodes.Status503ServiceUnavailable);
            }).WithTags("Operations")
            .WithSummary("200 when this hub is the writer and its store answers; 503 while recovering, on standby or cut off from the store (the body says which, and how stale a standby's reads are).");
        app.MapGet("/metrics", (HubMetrics metrics) => Results.Text(metrics.Render(), "text/plain; version=0.0.4; charset=utf-8"))
            .WithTags("Operations").WithSummary("Prometheus metrics.");
        app.MapGet("/v1/exceptions", GetExceptions).WithTags("Operations").RequireScope(Scopes.Admin)
            .Produces<ExceptionPage>().WithSummary("Exceptions raised by the engine (oversell, negative-on-hand, clamp, sequence-gap), oldest first.");
    }

    private static IResult GetExceptions(string? type, string? after, string? limit, Sequencer engine)
    {
        var input = new JsonInput();
        if (type is not null && !JsonInput.IsId(type))
        {
            input.Invalid("type", "must be an exception type such as oversell, negative-on-hand, clamp or sequence-gap.");
        }
        var (afterId, pageSize) = input.Page(after, limit, PageSizeDefault, PageSizeMax);
        if (input.Result() is { } invalid)
        {
            return invalid;
        }
        var rows = engine.Journal.ReadExceptions(type, afterId, pageSize + 1);
        var more = rows.Count > pageSize;
        var page = rows.Take(pageSize).Select(x => new ExceptionView(x.Id, x.Type, x.Sku, x.LocationId, x.EventId, x.ReservationId,
            x.Source, x.Quantity, x.Detail, x.RecordedAt)).ToArray();
        return Results.Ok(new ExceptionPage(page, more ? page[^1].Id.ToString(CultureInfo.InvariantCulture) : null));
    }
}
