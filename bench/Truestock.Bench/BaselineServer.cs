using System.Globalization;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace Truestock.Bench;

/// <summary>
/// The baseline: inventory done the common way, as a small HTTP server with the same request
/// shapes as the hub. Every write request is one database transaction, and a reservation takes
/// stock with a conditional row update:
/// <c>UPDATE stock SET reserved = reserved + @q WHERE sku=@s AND loc=@l AND on_hand - reserved - damaged >= @q</c>,
/// then inserts the reservation row, then commits (<see cref="BaselineStore"/>). It runs on a
/// SQLite file with the hub's journal settings (<c>--data file.db</c>, <see cref="SqliteBaselineStore"/>)
/// or on a PostgreSQL database with a pool of connections and real row locks
/// (<c>--postgres "connection string"</c>, <see cref="PostgresBaselineStore"/>).
/// Semantics are deliberately simpler than the hub's (no count ordering, no channel buffers or
/// allocation percentages, no ledger rows for reservations), so the baseline does less work per request.
/// </summary>
public static class BaselineServer
{
    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    public static async Task<int> Run(string[] args)
    {
        var port = int.Parse(Arg(args, "--port") ?? throw new ArgumentException("--port is required"), CultureInfo.InvariantCulture);
        using var store = Arg(args, "--postgres") is { } postgres
            ? await PostgresBaselineStore.Open(postgres)
            : await SqliteBaselineStore.Open(Arg(args, "--data") ?? throw new ArgumentException("--data file.db or --postgres \"connection string\" is required"));

        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        builder.WebHost.UseUrls($"http://127.0.0.1:{port}");
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        var app = builder.Build();

        app.MapGet("/health/ready", () => Results.Ok(new { status = "ready" }));
        app.MapGet("/baseline/stats", () => Results.Ok(store.Stats()));
        app.MapPut("/v1/locations/{id}", (string id) => store.PutLocation(id));
        app.MapPut("/v1/channels/{id}", async (string id, HttpRequest request) =>
        {
            var body = await JsonSerializer.DeserializeAsync<ChannelBody>(request.Body, Json);
            return body is null ? Results.BadRequest() : await store.PutChannel(id, body.Locations);
        });
        app.MapPost("/v1/events", async (HttpRequest request) =>
        {
            var body = await JsonSerializer.DeserializeAsync<EventsBody>(request.Body, Json);
            return body?.Events is null ? Results.BadRequest() : await store.ApplyEvents(body.Events);
        });
        app.MapPost("/v1/reservations", async (HttpRequest request) =>
        {
            var body = await JsonSerializer.DeserializeAsync<ReservationBody>(request.Body, Json);
            return body?.Lines is null ? Results.BadRequest() : await store.Reserve(body);
        });
        app.MapPost("/v1/reservations/{id}/commit", (string id) => store.Transition(id, commit: true));
        app.MapPost("/v1/reservations/{id}/release", (string id) => store.Transition(id, commit: false));
        app.MapGet("/v1/availability/{sku}", (string sku) => store.Availability(sku));
        app.MapGet("/v1/channels/{id}/availability", (string id, HttpRequest request) =>
            store.ChannelAvailability(id, request.Query["sku"].Where(s => s is not null).Select(s => s!).ToArray()));
        await app.RunAsync();
        return 0;
    }

    private static string? Arg(string[] args, string name)
    {
        var i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
    }

    public sealed record ChannelBody(string? Name, string[] Locations);

    public sealed record EventBody(string EventId, string Type, string Sku, string LocationId, long Quantity, string OccurredAt, string Source);

    public sealed record EventsBody(EventBody[] Events);

    public sealed record LineBody(string Sku, long Quantity, string? LocationId);

    public sealed record ReservationBody(string ReservationId, string ChannelId, int? TtlSeconds, LineBody[] Lines);
}
