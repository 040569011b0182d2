using System.ComponentModel;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.Options;
using Truestock.Server.Engine;
using Truestock.Server.Http;
using Truestock.Server.Storage;

namespace Truestock.Server.Reconciliation;

/// <summary>A stored snapshot.</summary>
public sealed record ReconSnapshotView(long SnapshotId, string System, string SystemId, DateTimeOffset AsOf, string Kind, DateTimeOffset UploadedAt,
    string CorrelationId, long Rows, long Invalid, string State);

/// <summary>A reconciliation run and what it found.</summary>
public sealed record ReconRunView(long RunId, long SnapshotId, string System, string SystemId, DateTimeOffset AsOf, string Origin, string State,
    DateTimeOffset StartedAt, DateTimeOffset? FinishedAt, long Compared, long Matched, long Unknown, long Variances, long OverThreshold,
    long UnitsAbsolute, string? Error);

/// <summary>A page of runs, newest first (cursor: the last run id).</summary>
public sealed record ReconRunPage(IReadOnlyList<ReconRunView> Items, string? Next);

/// <summary>One variance: expected (the hub), reported (the system), difference = reported − expected.</summary>
public sealed record ReconVarianceView(long VarianceNo, string Sku, string? LocationId, string? ChannelId, long? Expected, long Reported,
    long? Difference, decimal? UnitCost, decimal? Value, string Cause, string? CauseDetail, bool OverThreshold, string Repair, long? ProposalId,
    string? ExceptionId);

/// <summary>A page of variances (cursor: the last variance number).</summary>
public sealed record ReconVariancePage(long RunId, IReadOnlyList<ReconVarianceView> Items, string? Next);

/// <summary>A proposed event and its decision.</summary>
public sealed record ReconProposalView(long ProposalId, long RunId, long VarianceNo, string Status, string Type, string Sku, string LocationId,
    long Quantity, DateTimeOffset OccurredAt, string EventId, DateTimeOffset CreatedAt, DateTimeOffset? DecidedAt, string? DecidedBy, string? ApiKey,
    string? Reason, string? EventStatus, string? EventError);

/// <summary>A page of proposals (cursor: the last proposal id).</summary>
public sealed record ReconProposalPage(IReadOnlyList<ReconProposalView> Items, string? Next);

/// <summary>
/// The reconciliation API under <c>/v1/reconciliation</c> (scope admin; see docs/reconciliation.md): snapshots in,
/// runs and their variances, and the proposals operators approve or reject.
/// </summary>
internal static class ReconciliationEndpoints
{
    private const int PageSizeDefault = 100;
    private const int PageSizeMax = 1000;
    /// <summary>Registers the reconciliation services and, on a hub with schedules, the scheduler.</summary>
    public static void AddReconciliation(IServiceCollection services, IConfiguration configuration)
    {
        services.Configure<ReconciliationOptions>(configuration.GetSection(ReconciliationOptions.Section));
        services.AddSingleton<DriftExceptions>();
        services.AddSingleton<ReconciliationService>();
        services.AddHostedService<ReconciliationScheduler>();
    }

    /// <summary>Maps the endpoints.</summary>
    public static void MapReconciliation(IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/reconciliation").WithTags("Reconciliation").RequireScope(Scopes.Admin);
        group.MapPost("/snapshots", PostSnapshot).Produces<SnapshotUploadReport>(StatusCodes.Status201Created)
            .ProducesProblem(StatusCodes.Status413PayloadTooLarge).ProducesProblem(StatusCodes.Status415UnsupportedMediaType)
            .ProducesProblem(StatusCodes.Status422UnprocessableEntity).ProducesProblem(StatusCodes.Status503ServiceUnavailable)
            .AddOpenApiOperationTransformer(CsvUploads.RequestBody("The snapshot as CSV, UTF-8, RFC 4180, first row a header."))
            .WithSummary("Upload a stock snapshot of the ERP, the WMS or a channel as CSV, streamed; answers the stored snapshot and the problems by line.")
            .WithDescription("erp/wms: sku,locationId,onHand[,damaged,inspection,unitCost]; channel: sku,available[,unitCost]. Nothing is applied to the ledger: "
                + "start a run with POST /v1/reconciliation/runs. See docs/reconciliation.md.");
        group.MapGet("/snapshots/{snapshotId}", GetSnapshot).Produces<ReconSnapshotView>().WithSummary("One stored snapshot.");
        group.MapPost("/runs", PostRun).Produces<ReconRunView>(StatusCodes.Status201Created)
            .WithSummary("Compare a snapshot with the hub (onHand as of the snapshot for ERP/WMS, ATS now for a channel); answers when the run is done.");
        group.MapGet("/runs", ListRuns).Produces<ReconRunPage>().WithSummary("Runs, newest first (?snapshotId=&after=&limit=).");
        group.MapGet("/runs/{runId}", GetRun).Produces<ReconRunView>().WithSummary("One run and its counts.");
        group.MapGet("/runs/{runId}/variances", ListVariances).Produces<ReconVariancePage>()
            .WithSummary("The variances of a run with their cause and repair (?after=&limit=&overThreshold=true|false).");
        group.MapGet("/proposals", ListProposals).Produces<ReconProposalPage>()
            .WithSummary("Proposed counts (?status=proposed|approving|approved|rejected&after=&limit=).");
        group.MapGet("/proposals/{proposalId}", GetProposal).Produces<ReconProposalView>().WithSummary("One proposal and its decision.");
        group.MapPost("/proposals/{proposalId}/approve", Approve).Produces<ReconProposalView>()
            .WithSummary("Approve a proposed count: it is applied once, with an eventId derived from the proposal (body optional: { by?, reason? }).");
        group.MapPost("/proposals/{proposalId}/reject", Reject).Produces<ReconProposalView>()
            .WithSummary("Reject a proposed count with a reason ({ reason, by? }); nothing is applied.");
    }

    // ------------------------------------------------------------------ snapshots

    private static async Task<IResult> PostSnapshot(HttpContext http, Sequencer engine, TimeProvider time, IOptions<ReconciliationOptions> options,
        [Description("erp, wms or channel.")] string? system,
        [Description("The system's id (1–64 of [A-Za-z0-9._:-]); for a channel, its channel id.")] string? systemId,
        [Description("When the system took the snapshot: RFC 3339 with an offset.")] string? asOf,
        [Description("full (the system holds nothing else at the snapshot's locations / the channel shows no other SKU) or partial (default).")] string? kind)
    {
        var input = new JsonInput();
        if (!ReconSystems.IsKnown(system))
        {
            input.Invalid("system", "must be erp, wms or channel.");
        }
        if (systemId is null || !JsonInput.IsId(systemId))
        {
            input.Invalid("systemId", "must be 1–64 characters of A–Z, a–z, 0–9, '.', '_', ':' or '-'.");
        }
        using (var document = JsonDocument.Parse(JsonSerializer.SerializeToUtf8Bytes(new Dictionary<string, string?> { ["asOf"] = asOf })))
        {
            var parsed = input.Timestamp(document.RootElement, "asOf", "asOf", required: true);
            kind ??= "partial";
            if (kind is not ("full" or "partial"))
            {
                input.Invalid("kind", "must be full or partial.");
            }
            if (input.Result() is { } invalid)
            {
                return invalid;
            }
            var limits = options.Value;
            if (http.Request.ContentLength > limits.SnapshotBodyBytesMax)
            {
                return TooLarge($"Snapshots are limited to {limits.SnapshotBodyBytesMax} bytes (Reconciliation:SnapshotBodyBytesMax); nothing was kept.");
            }
            if (UnsupportedMediaType(http.Request.ContentType) is { } unsupported)
            {
                return unsupported;
            }
            if (engine.Role != EngineRole.Writer)
            {
                return NotWriter(http);
            }
            CsvUploads.RaiseBodyLimit(http, limits.SnapshotBodyBytesMax);
            var parameters = new SnapshotParameters(system!, systemId!, parsed!.Value, kind);
            var result = await SnapshotUpload.Run(http.Request.Body, engine.Journal, limits, parameters, time.GetUtcNow(), http.CorrelationId(),
                http.RequestAborted);
            return result switch
            {
                SnapshotUploadResult.HeaderRejected h => Problems.Create(StatusCodes.Status422UnprocessableEntity, "invalid-csv-header",
                    "The CSV header is invalid.", h.Detail + " Nothing was stored.", h.Errors),
                SnapshotUploadResult.TooLarge t => TooLarge(t.Detail),
                SnapshotUploadResult.Stored s => Results.Created($"/v1/reconciliation/snapshots/{s.Report.SnapshotId}", s.Report),
                _ => throw new InvalidOperationException($"Unknown snapshot upload result {result.GetType().Name}."),
            };
        }
    }

    private static IResult GetSnapshot(string snapshotId, Sequencer engine)
    {
        if (!long.TryParse(snapshotId, NumberStyles.None, CultureInfo.InvariantCulture, out var id) || engine.Journal.ReadReconSnapshot(id) is not { } s)
        {
            return Problems.NotFound("unknown-snapshot", $"There is no snapshot '{snapshotId}'.");
        }
        return Results.Ok(new ReconSnapshotView(s.SnapshotId, s.System, s.SystemId, s.AsOf, s.Scope, s.UploadedAt, s.CorrelationId, s.Rows, s.Invalid, s.State));
    }

    // ------------------------------------------------------------------ runs

    private static async Task<IResult> PostRun(HttpContext http, ReconciliationService service, IOptions<HubOptions> hub)
    {
        var (document, error) = await JsonInput.ReadObject(http.Request, hub.Value.RequestBodyBytesMax);
        if (error is not null)
        {
            return error;
        }
        using var _ = document;
        var input = new JsonInput();
        var snapshotId = input.Long(document!.RootElement, "snapshotId", "snapshotId", required: true, 1, long.MaxValue);
        if (input.Result() is { } invalid)
        {
            return invalid;
        }
        var (refusal, run) = await service.Run(snapshotId!.Value, "api", http.RequestAborted);
        return refusal switch
        {
            RunRefusal.UnknownSnapshot => Problems.Unprocessable("unknown-snapshot", $"There is no snapshot {snapshotId}; upload one first.", "snapshotId"),
            RunRefusal.SnapshotIncomplete => Problems.Conflict("snapshot-incomplete", "The snapshot is not complete.",
                $"Snapshot {snapshotId} is still being uploaded; run it once its upload has answered."),
            RunRefusal.NotWriter => NotWriter(http),
            _ => Results.Created($"/v1/reconciliation/runs/{run!.RunId}", RunView(run)),
        };
    }

    private static IResult ListRuns(string? snapshotId, string? after, string? limit, Sequencer engine)
    {
        var input = new JsonInput();
        long? snapshot = null;
        if (snapshotId is not null)
        {
            if (long.TryParse(snapshotId, NumberStyles.None, CultureInfo.InvariantCulture, out var s))
            {
                snapshot = s;
            }
            else
            {
                input.Invalid("snapshotId", "must be a snapshot id.");
            }
        }
        var (afterId, pageSize) = input.Page(after, limit, PageSizeDefault, PageSizeMax);
        if (input.Result() is { } invalid)
        {
            return invalid;
        }
        var runs = engine.Journal.ReadReconRuns(snapshot, after is null ? long.MaxValue : afterId, pageSize + 1);
        var more = runs.Count > pageSize;
        var items = runs.Take(pageSize).Select(RunView).ToList();
        return Results.Ok(new ReconRunPage(items, more ? items[^1].RunId.ToString(CultureInfo.InvariantCulture) : null));
    }

    private static IResult GetRun(string runId, Sequencer engine) =>
        long.TryParse(runId, NumberStyles.None, CultureInfo.InvariantCulture, out var id) && engine.Journal.ReadReconRun(id) is { } run
            ? Results.Ok(RunView(run))
            : Problems.NotFound("unknown-run", $"There is no run '{runId}'.");

    private static IResult ListVariances(string runId, string? after, string? limit, string? overThreshold, Sequencer engine)
    {
        if (!long.TryParse(runId, NumberStyles.None, CultureInfo.InvariantCulture, out var id) || engine.Journal.ReadReconRun(id) is null)
        {
            return Problems.NotFound("unknown-run", $"There is no run '{runId}'.");
        }
        var input = new JsonInput();
        var (afterNo, pageSize) = input.Page(after, limit, PageSizeDefault, PageSizeMax);
        bool? over = null;
        if (overThreshold is not null)
        {
            if (bool.TryParse(overThreshold, out var o))
            {
                over = o;
            }
            else
            {
                input.Invalid("overThreshold", "must be true or false.");
            }
        }
        if (input.Result() is { } invalid)
        {
            return invalid;
        }
        var rows = engine.Journal.ReadReconVariances(id, afterNo, pageSize + 1, over);
        var items = rows.Take(pageSize).Select(v => new ReconVarianceView(v.VarianceNo, v.Sku, v.LocationId, v.ChannelId, v.Expected, v.Reported,
            v.Difference, v.UnitCost, v.Value, v.Cause, v.CauseDetail, v.OverThreshold, v.Repair, v.ProposalId, v.ExceptionRef)).ToList();
        return Results.Ok(new ReconVariancePage(id, items, rows.Count > pageSize ? items[^1].VarianceNo.ToString(CultureInfo.InvariantCulture) : null));
    }

    private static ReconRunView RunView(ReconRunRecord r) =>
        new(r.RunId, r.SnapshotId, r.System, r.SystemId, r.AsOf, r.Origin, r.State, r.StartedAt, r.FinishedAt, r.Compared, r.Matched, r.Unknown,
            r.Variances, r.OverThreshold, r.UnitsAbsolute, r.Error);

    // ------------------------------------------------------------------ proposals

    private static IResult ListProposals(string? status, string? after, string? limit, Sequencer engine)
    {
        var input = new JsonInput();
        if (status is not null && !ProposalStates.IsKnown(status))
        {
            input.Invalid("status", "must be proposed, approving, approved or rejected.");
        }
        var (afterId, pageSize) = input.Page(after, limit, PageSizeDefault, PageSizeMax);
        if (input.Result() is { } invalid)
        {
            return invalid;
        }
        var rows = engine.Journal.ReadReconProposals(status, afterId, pageSize + 1);
        var items = rows.Take(pageSize).Select(ProposalView).ToList();
        return Results.Ok(new ReconProposalPage(items, rows.Count > pageSize ? items[^1].ProposalId.ToString(CultureInfo.InvariantCulture) : null));
    }

    private static IResult GetProposal(string proposalId, Sequencer engine) =>
        long.TryParse(proposalId, NumberStyles.None, CultureInfo.InvariantCulture, out var id) && engine.Journal.ReadReconProposal(id) is { } p
            ? Results.Ok(ProposalView(p))
            : UnknownProposal(proposalId);

    private static async Task<IResult> Approve(string proposalId, HttpContext http, ReconciliationService service, IOptions<HubOptions> hub)
    {
        if (!long.TryParse(proposalId, NumberStyles.None, CultureInfo.InvariantCulture, out var id))
        {
            return UnknownProposal(proposalId);
        }
        var (decision, error) = await ReadDecision(http, hub.Value, reasonRequired: false);
        if (error is not null)
        {
            return error;
        }
        var (result, proposal) = await service.Approve(id, decision.By, decision.ApiKey, decision.Reason);
        return result switch
        {
            DecisionResult.Unknown => UnknownProposal(proposalId),
            DecisionResult.Conflict => Problems.Conflict("proposal-decided", "The proposal was already decided.",
                $"Proposal {id} was rejected by {proposal!.DecidedBy} at {proposal.DecidedAt:O} ({proposal.Reason}); it cannot be approved."),
            _ => Results.Ok(ProposalView(proposal!)),
        };
    }

    private static async Task<IResult> Reject(string proposalId, HttpContext http, ReconciliationService service, IOptions<HubOptions> hub)
    {
        if (!long.TryParse(proposalId, NumberStyles.None, CultureInfo.InvariantCulture, out var id))
        {
            return UnknownProposal(proposalId);
        }
        var (decision, error) = await ReadDecision(http, hub.Value, reasonRequired: true);
        if (error is not null)
        {
            return error;
        }
        var (result, proposal) = service.Reject(id, decision.By, decision.ApiKey, decision.Reason!);
        return result switch
        {
            DecisionResult.Unknown => UnknownProposal(proposalId),
            DecisionResult.Conflict => Problems.Conflict("proposal-decided", "The proposal was already decided.",
                $"Proposal {id} is {proposal!.State}; only a proposal still waiting can be rejected."),
            _ => Results.Ok(ProposalView(proposal!)),
        };
    }

    private sealed record Decision(string By, string? ApiKey, string? Reason);

    /// <summary>
    /// Reads { by?, reason? } (the body is optional for an approval). Who decided is the <c>by</c> given, else the name
    /// of the API key, else "anonymous"; the key's name is recorded too, so the audit trail names the credential used.
    /// </summary>
    private static async Task<(Decision Decision, IResult? Error)> ReadDecision(HttpContext http, HubOptions hub, bool reasonRequired)
    {
        var keyName = KeyName(http, hub);
        string? by = null, reason = null;
        if (reasonRequired || http.Request.ContentLength is > 0 || http.Request.Headers.TransferEncoding.Count > 0)
        {
            var (document, error) = await JsonInput.ReadObject(http.Request, hub.RequestBodyBytesMax);
            if (error is not null)
            {
                return (null!, error);
            }
            using var _ = document;
            var input = new JsonInput();
            by = input.String(document!.RootElement, "by", "by", required: false, 128);
            reason = input.String(document.RootElement, "reason", "reason", required: reasonRequired);
            if (input.Result() is { } invalid)
            {
                return (null!, invalid);
            }
        }
        return (new Decision(by ?? keyName ?? "anonymous", keyName, reason), null);
    }

    /// <summary>The name of the API key the request was authenticated with (the scope filter already checked it), or null.</summary>
    private static string? KeyName(HttpContext http, HubOptions hub)
    {
        var header = http.Request.Headers.Authorization.ToString();
        if (!header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) || header.Length <= 7)
        {
            return null;
        }
        var digest = SHA256.HashData(Encoding.UTF8.GetBytes(header[7..].Trim()));
        foreach (var key in hub.ApiKeys)
        {
            if (!string.IsNullOrEmpty(key.Key) && CryptographicOperations.FixedTimeEquals(SHA256.HashData(Encoding.UTF8.GetBytes(key.Key)), digest))
            {
                return key.Name;
            }
        }
        return null;
    }

    private static ReconProposalView ProposalView(ReconProposalRecord p) =>
        new(p.ProposalId, p.RunId, p.VarianceNo, p.State, p.EventType, p.Sku, p.LocationId, p.Quantity, p.OccurredAt, p.EventId, p.CreatedAt,
            p.DecidedAt, p.DecidedBy, p.ApiKey, p.Reason, p.EventStatus, p.EventError);

    private static IResult UnknownProposal(string proposalId) => Problems.NotFound("unknown-proposal", $"There is no proposal '{proposalId}'.");

    // ------------------------------------------------------------------ helpers

    private static IResult NotWriter(HttpContext http)
    {
        http.Response.Headers.RetryAfter = "5";
        return Problems.Create(StatusCodes.Status503ServiceUnavailable, "unavailable", "Temporarily unavailable.",
            "This hub is not the writer; reconciliation snapshots and runs are taken by the writer hub.");
    }

    private static IResult TooLarge(string detail) =>
        Problems.Create(StatusCodes.Status413PayloadTooLarge, "body-too-large", "The request body is too large.", detail);

    // A charset other than UTF-8 gets the same answer as a type that is not CSV: the text names both requirements.
    private static IResult? UnsupportedMediaType(string? contentType) => CsvUploads.CheckMediaType(contentType, out _) is null
        ? null
        : Problems.Create(StatusCodes.Status415UnsupportedMediaType, "unsupported-media-type", "Unsupported media type.",
            $"Snapshots are CSV in UTF-8: send 'Content-Type: text/csv' (got '{contentType}').");
}
