using System.Globalization;
using Truestock.Server.Engine;
using Truestock.Server.Http;
using Truestock.Server.Storage;

namespace Truestock.Server.Erp;

/// <summary>ERP posting status.</summary>
/// <param name="Enabled">Whether ERP posting is configured.</param>
/// <param name="Kind">rest or odoo (null when off).</param>
/// <param name="Posting">Whether this hub posts (it is the writer).</param>
/// <param name="Backlog">Movements waiting to be posted.</param>
/// <param name="Due">Of those, the ones due now (the others wait for a retry time).</param>
/// <param name="OldestPendingSeconds">Age of the oldest movement not yet booked.</param>
/// <param name="DeadLetters">Movements in the dead-letter list.</param>
/// <param name="Posted">Movements the ERP has booked (all time).</param>
/// <param name="LastPostedAt">When the newest booking was recorded.</param>
/// <param name="Postings">This process's postings by outcome since it started.</param>
/// <param name="Calls">HTTP calls to the ERP since start.</param>
/// <param name="Throttles">Throttle answers (429) since start.</param>
/// <param name="Failures">Failed calls since start.</param>
/// <param name="LastError">The last error the ERP answered, or of the poster.</param>
public sealed record ErpStatusView(
    bool Enabled, string? Kind, bool Posting, long Backlog, long Due, double OldestPendingSeconds, long DeadLetters, long Posted,
    DateTimeOffset? LastPostedAt, ErpPostingsView Postings, long Calls, long Throttles, long Failures, string? LastError);

/// <summary>Postings by outcome since the process started.</summary>
public sealed record ErpPostingsView(long Posted, long Skipped, long Retried, long DeadLettered);

/// <summary>A dead-lettered ERP posting.</summary>
/// <param name="LedgerId">The ledger row (the id to replay or discard).</param>
/// <param name="Key">The idempotency key sent to the ERP.</param>
public sealed record ErpDeadLetterView(long LedgerId, string Key, string EventId, string Sku, string LocationId, string Type, long Quantity,
    int Attempts, string? Error, DateTimeOffset DeadAt);

/// <summary>A page of ERP dead letters; pass <c>next</c> as <c>after</c>.</summary>
public sealed record ErpDeadLetterPage(IReadOnlyList<ErpDeadLetterView> Items, string? Next);

/// <summary>The answer to a replay or discard.</summary>
public sealed record ErpDeadLetterActionView(string Action, int Count);

/// <summary>What the ERP made of a ledger entry: pending, posted, skipped (nothing to book), dead or discarded.</summary>
public sealed record ErpLedgerView(string Status, DateTimeOffset? PostedAt, string? DocumentId, string? Error);

/// <summary>Registration of ERP posting: options, the poster, the admin API and the metrics.</summary>
internal static class ErpEndpoints
{
    private const int PageSizeDefault = 100;
    private const int PageSizeMax = 1000;

    /// <summary>Binds <c>Truestock:Erp</c>; when it names a kind, validates it (failing the start with the setting named) and adds the poster.</summary>
    public static IServiceCollection AddErpPosting(this IServiceCollection services, IConfiguration configuration)
    {
        var section = configuration.GetSection(ErpOptions.Section);
        services.Configure<ErpOptions>(section);
        var options = section.Get<ErpOptions>() ?? new ErpOptions();
        if (!options.Enabled)
        {
            return services;
        }
        if (options.Validate() is { } error)
        {
            throw new InvalidOperationException("ERP posting is misconfigured: " + error);
        }
        services.AddSingleton<ErpPoster>();
        services.AddHostedService(sp => sp.GetRequiredService<ErpPoster>());
        return services;
    }

    public static void MapErpPosting(this WebApplication app)
    {
        if (app.Services.GetService<ErpPoster>() is { } poster)
        {
            app.Services.GetRequiredService<HubMetrics>().Sections.Add(poster.RenderMetrics);
        }
        var group = app.MapGroup("/v1/erp").WithTags("ERP posting").RequireScope(Scopes.Admin);
        group.MapGet("/status", GetStatus).Produces<ErpStatusView>()
            .WithSummary("ERP posting status: backlog, oldest pending age, dead letters, postings, calls, throttles, last error.");
        group.MapGet("/dead-letters", List).Produces<ErpDeadLetterPage>()
            .WithSummary("Movements the ERP refused permanently or that ran out of attempts, in ledger order (?after=ledgerId&limit=).");
        group.MapGet("/dead-letters/{ledgerId}", GetOne).Produces<ErpDeadLetterView>().WithSummary("One dead letter, with the ERP's error.");
        group.MapPost("/dead-letters/replay", (Sequencer engine) => Replay(null, engine))
            .Produces<ErpDeadLetterActionView>().WithSummary("Puts every dead letter back in the queue.");
        group.MapPost("/dead-letters/{ledgerId}/replay", (string ledgerId, Sequencer engine) => Replay(ledgerId, engine))
            .Produces<ErpDeadLetterActionView>().WithSummary("Puts one dead letter back in the queue.");
        group.MapDelete("/dead-letters", (Sequencer engine) => Discard(null, engine))
            .Produces<ErpDeadLetterActionView>().WithSummary("Discards every dead letter: the ERP never books them.");
        group.MapDelete("/dead-letters/{ledgerId}", (string ledgerId, Sequencer engine) => Discard(ledgerId, engine))
            .Produces<ErpDeadLetterActionView>().WithSummary("Discards one dead letter.");
    }

    /// <summary>The <c>erp</c> objects of a ledger page, by ledger id (empty when ERP posting never applied to it).</summary>
    public static Dictionary<long, ErpLedgerView> LedgerStates(AdoJournal journal, IReadOnlyList<StoredLedgerEntry> page)
    {
        if (page.Count == 0)
        {
            return [];
        }
        return journal.ReadErpStates(page[0].Id, page[^1].Id).ToDictionary(p => p.Key, p => new ErpLedgerView(p.Value.Status,
            p.Value.PostedAtMs is { } at ? DateTimeOffset.FromUnixTimeMilliseconds(at) : null, p.Value.DocumentId, p.Value.Error));
    }

    private static IResult GetStatus(HttpContext http, Sequencer engine, TimeProvider time)
    {
        var poster = http.RequestServices.GetService<ErpPoster>();
        var nowMs = time.GetUtcNow().ToUnixTimeMilliseconds();
        var journal = engine.Journal;
        var counts = journal.ReadErpCounts(nowMs);
        var lastPosted = journal.ReadLastErpPostedMs();
        var stats = poster?.Stats;
        return Results.Ok(new ErpStatusView(
            poster is not null, poster?.Kind, poster?.Posting ?? false, counts.Pending, counts.Due,
            counts.OldestPendingMs is { } oldest ? Math.Max(0, nowMs - oldest) / 1000.0 : 0, counts.Dead,
            journal.CountErpOutbox(AdoJournal.ErpStatus.Posted), lastPosted is { } last ? DateTimeOffset.FromUnixTimeMilliseconds(last) : null,
            stats is null ? new ErpPostingsView(0, 0, 0, 0) : new ErpPostingsView(Interlocked.Read(ref stats.Posted), Interlocked.Read(ref stats.Skipped),
                Interlocked.Read(ref stats.Retried), Interlocked.Read(ref stats.DeadLettered)),
            stats is null ? 0 : Interlocked.Read(ref stats.Counters.Calls),
            stats is null ? 0 : Interlocked.Read(ref stats.Counters.Throttles),
            stats is null ? 0 : Interlocked.Read(ref stats.Counters.Failures),
            stats?.LastError));
    }

    private static IResult List(string? after, string? limit, Sequencer engine)
    {
        var input = new JsonInput();
        var (afterId, pageSize) = input.Page(after, limit, PageSizeDefault, PageSizeMax);
        if (input.Result() is { } invalid)
        {
            return invalid;
        }
        var rows = engine.Journal.ReadErpDeadLetters(null, afterId, pageSize + 1);
        var page = rows.Take(pageSize).Select(View).ToArray();
        return Results.Ok(new ErpDeadLetterPage(page, rows.Count > pageSize ? page[^1].LedgerId.ToString(CultureInfo.InvariantCulture) : null));
    }

    private static IResult GetOne(string ledgerId, Sequencer engine)
    {
        if (ParseId(ledgerId) is not { } id)
        {
            return InvalidId();
        }
        var rows = engine.Journal.ReadErpDeadLetters(id, 0, 1);
        return rows.Count == 0 ? UnknownDeadLetter(id) : Results.Ok(View(rows[0]));
    }

    private static IResult Replay(string? ledgerId, Sequencer engine)
    {
        long? id = null;
        if (ledgerId is not null)
        {
            if (ParseId(ledgerId) is not { } parsed)
            {
                return InvalidId();
            }
            id = parsed;
        }
        var count = engine.Journal.ReplayErpDeadLetters(id);
        return id is { } one && count == 0 ? UnknownDeadLetter(one) : Results.Ok(new ErpDeadLetterActionView("replayed", count));
    }

    private static IResult Discard(string? ledgerId, Sequencer engine)
    {
        long? id = null;
        if (ledgerId is not null)
        {
            if (ParseId(ledgerId) is not { } parsed)
            {
                return InvalidId();
            }
            id = parsed;
        }
        var count = engine.Journal.DiscardErpDeadLetters(id);
        return id is { } one && count == 0 ? UnknownDeadLetter(one) : Results.Ok(new ErpDeadLetterActionView("discarded", count));
    }

    private static long? ParseId(string text) =>
        long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var id) && id > 0 ? id : null;

    private static IResult InvalidId() =>
        Problems.Unprocessable("validation-failed", "ledgerId must be the id of a ledger entry (a positive whole number).", "ledgerId");

    private static IResult UnknownDeadLetter(long id) =>
        Problems.NotFound("unknown-dead-letter", $"Ledger entry {id} has no ERP dead letter.");

    private static ErpDeadLetterView View(ErpDeadLetter d) =>
        new(d.LedgerId, $"{d.EventId}:{d.LocationId}", d.EventId, d.Sku, d.LocationId, d.Type, d.Quantity, d.Attempts, d.Error,
            DateTimeOffset.FromUnixTimeMilliseconds(d.DeadAtMs));
}
