using Truestock.Server.Engine;

namespace Truestock.Server.Http;

internal static class OperationsEndpoints
{
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
        // GET /v1/exceptions moved to the exceptions workflow (Exceptions/ExceptionEndpoints.cs), which extends it.
    }
}
