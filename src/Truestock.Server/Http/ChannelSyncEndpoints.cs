using System.Globalization;
using Truestock.Core;
using Truestock.Server.Channels;
using Truestock.Server.Engine;
using Truestock.Server.Storage;

namespace Truestock.Server.Http;

/// <summary>A dead-lettered publication.</summary>
public sealed record DeadLetterView(string Sku, long Available, long Version, long? PublishedAvailable, int Attempts, string? Error, DateTimeOffset DeadAt);

/// <summary>A page of dead letters (cursor: the last SKU).</summary>
public sealed record DeadLetterPage(IReadOnlyList<DeadLetterView> Items, string? Next);

/// <summary>The answer to a replay or discard.</summary>
public sealed record DeadLetterActionView(string ChannelId, string Action, int Count);

/// <summary>Publication status of a channel.</summary>
public sealed record ChannelSyncView(
    string ChannelId, string? Kind, bool Publishing, long Pending, long Due, long DeadLetters, double OldestPendingSeconds,
    DateTimeOffset? LastPublishedAt, bool Degraded, long DegradationUnits, int DegradationPercent,
    long Published, long Retried, long DeadLettered, long Calls, long Throttles, long Failures, string? LastError);

internal static class ChannelSyncEndpoints
{
    private const int PageSizeDefault = 100;
    private const int PageSizeMax = 1000;

    public static void MapChannelSync(this IEndpointRouteBuilder app)
    {
        var group = app.MapGroup("/v1/channels/{channelId}").WithTags("Channel sync").RequireScope(Scopes.Admin);
        group.MapGet("/sync", GetStatus).Produces<ChannelSyncView>()
            .WithSummary("Publication status of a connected channel: backlog, oldest pending age, dead letters, degradation, calls and throttles.");
        group.MapGet("/dead-letters", List).Produces<DeadLetterPage>()
            .WithSummary("Publications the channel refused permanently or that ran out of attempts, by SKU (?after=SKU&limit=).");
        group.MapGet("/dead-letters/{sku}", GetOne).Produces<DeadLetterView>().WithSummary("One dead letter, with the channel's error.");
        group.MapPost("/dead-letters/replay", (string channelId, Sequencer engine, TimeProvider time) => Replay(channelId, null, engine, time))
            .Produces<DeadLetterActionView>().WithSummary("Puts every dead letter of the channel back in the queue; the latest ATS is published.");
        group.MapPost("/dead-letters/{sku}/replay", (string channelId, string sku, Sequencer engine, TimeProvider time) => Replay(channelId, sku, engine, time))
            .Produces<DeadLetterActionView>().WithSummary("Puts one dead letter back in the queue; the latest ATS is published.");
        group.MapDelete("/dead-letters", (string channelId, Sequencer engine) => Discard(channelId, null, engine))
            .Produces<DeadLetterActionView>().WithSummary("Discards every dead letter: the channel keeps what it shows until the SKU's ATS changes again.");
        group.MapDelete("/dead-letters/{sku}", (string channelId, string sku, Sequencer engine) => Discard(channelId, sku, engine))
            .Produces<DeadLetterActionView>().WithSummary("Discards one dead letter.");
    }

    private static async Task<IResult> GetStatus(string channelId, Sequencer engine, ChannelPublisher publisher, TimeProvider time)
    {
        var (channel, degradation) = await engine.Read((shard, _) => (shard.FindChannel(channelId), shard.DegradationOf(channelId)));
        if (channel is null)
        {
            return UnknownChannel(channelId);
        }
        var nowMs = time.GetUtcNow().ToUnixTimeMilliseconds();
        var counts = engine.Journal.ReadSyncCounts(channelId, nowMs);
        publisher.Stats.TryGetValue(channelId, out var stats);
        string? kind = null;
        if (channel.ConnectorJson is not null)
        {
            using var doc = System.Text.Json.JsonDocument.Parse(channel.ConnectorJson);
            kind = doc.RootElement.GetProperty("kind").GetString();
        }
        return Results.Ok(new ChannelSyncView(channelId, kind, stats is not null && engine.Role == EngineRole.Writer,
            counts.Pending, counts.Due, counts.Dead,
            counts.OldestPendingMs is { } oldest ? Math.Max(0, nowMs - oldest) / 1000.0 : 0,
            counts.LastPublishedMs is { } last ? DateTimeOffset.FromUnixTimeMilliseconds(last) : null,
            !degradation.IsNone, degradation.Units, degradation.Percent,
            Read(stats?.Published), Read(stats?.Retried), Read(stats?.DeadLettered),
            stats is null ? 0 : Interlocked.Read(ref stats.Counters.Calls),
            stats is null ? 0 : Interlocked.Read(ref stats.Counters.Throttles),
            stats is null ? 0 : Interlocked.Read(ref stats.Counters.Failures),
            stats?.LastError));
    }

    private static long Read(long? value) => value ?? 0;

    private static async Task<IResult> List(string channelId, string? after, string? limit, Sequencer engine)
    {
        var input = new JsonInput();
        if (after is not null && !JsonInput.IsSku(after))
        {
            input.Invalid("after", "must be the SKU of the last item of the previous page (the 'next' cursor).");
        }
        var (_, pageSize) = input.Page(null, limit, PageSizeDefault, PageSizeMax);
        if (input.Result() is { } invalid)
        {
            return invalid;
        }
        if (await engine.Read((shard, _) => shard.FindChannel(channelId)) is null)
        {
            return UnknownChannel(channelId);
        }
        var rows = engine.Journal.ReadDeadLetters(channelId, null, after ?? "", pageSize + 1);
        var page = rows.Take(pageSize).Select(View).ToArray();
        return Results.Ok(new DeadLetterPage(page, rows.Count > pageSize ? page[^1].Sku : null));
    }

    private static async Task<IResult> GetOne(string channelId, string sku, Sequencer engine)
    {
        if (await engine.Read((shard, _) => shard.FindChannel(channelId)) is null)
        {
            return UnknownChannel(channelId);
        }
        var rows = engine.Journal.ReadDeadLetters(channelId, sku, "", 1);
        return rows.Count == 0
            ? Problems.NotFound("unknown-dead-letter", $"Channel '{channelId}' has no dead letter for SKU '{sku}'.")
            : Results.Ok(View(rows[0]));
    }

    private static async Task<IResult> Replay(string channelId, string? sku, Sequencer engine, TimeProvider time)
    {
        if (await engine.Read((shard, _) => shard.FindChannel(channelId)) is null)
        {
            return UnknownChannel(channelId);
        }
        var count = engine.Journal.ReplayDeadLetters(channelId, sku, time.GetUtcNow().ToUnixTimeMilliseconds());
        if (sku is not null && count == 0)
        {
            return Problems.NotFound("unknown-dead-letter", $"Channel '{channelId}' has no dead letter for SKU '{sku}'.");
        }
        return Results.Ok(new DeadLetterActionView(channelId, "replayed", count));
    }

    private static async Task<IResult> Discard(string channelId, string? sku, Sequencer engine)
    {
        if (await engine.Read((shard, _) => shard.FindChannel(channelId)) is null)
        {
            return UnknownChannel(channelId);
        }
        var count = engine.Journal.DiscardDeadLetters(channelId, sku);
        if (sku is not null && count == 0)
        {
            return Problems.NotFound("unknown-dead-letter", $"Channel '{channelId}' has no dead letter for SKU '{sku}'.");
        }
        return Results.Ok(new DeadLetterActionView(channelId, "discarded", count));
    }

    private static DeadLetterView View(DeadLetter d) =>
        new(d.Sku, d.Ats, d.Version, d.PublishedAts, d.Attempts, d.Error, DateTimeOffset.FromUnixTimeMilliseconds(d.DeadAtMs));

    private static IResult UnknownChannel(string channelId) =>
        Problems.NotFound(RejectionTypes.UnknownChannel, $"Channel '{channelId}' is not declared; PUT /v1/channels/{channelId} first.");
}
