using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace Truestock.Server.Tests;

/// <summary>
/// A real hub for tests: Kestrel on a free loopback port, a real SQLite file in a temporary
/// folder, and an injectable clock. Restart keeps the data file, as a process restart would.
/// </summary>
public sealed class HubServer : IAsyncDisposable
{
    public static readonly DateTimeOffset Epoch = new(2026, 11, 23, 9, 0, 0, TimeSpan.Zero);

    private readonly string[] _extraArgs;
    private WebApplication? _app;

    private readonly bool _ownsStorage;

    private HubServer(TestStorage storage, FakeTimeProvider time, string[] extraArgs, bool ownsStorage = true)
    {
        _ownsStorage = ownsStorage;
        Storage = storage;
        Time = time;
        _extraArgs = extraArgs;
    }

    /// <summary>The store under this hub (SQLite or PostgreSQL, per TRUESTOCK_TEST_BACKEND).</summary>
    public TestStorage Storage { get; }

    public FakeTimeProvider Time { get; }

    public HttpClient Client { get; private set; } = null!;

    /// <summary>The running hub's journal, for tests of the outbox's own guarantees.</summary>
    internal Storage.AdoJournal Journal => _app!.Services.GetRequiredService<Engine.Sequencer>().Journal;

    public Uri BaseAddress { get; private set; } = null!;

    /// <summary>Starts a hub on a new, empty data file.</summary>
    public static async Task<HubServer> Start(params string[] extraArgs)
    {
        var server = new HubServer(await TestStorage.Create(), new FakeTimeProvider(Epoch), extraArgs);
        await server.Boot();
        return server;
    }

    /// <summary>Starts a second hub on another hub's store (which stays owned by the first).</summary>
    public static async Task<HubServer> StartOn(TestStorage storage, FakeTimeProvider time, params string[] extraArgs)
    {
        var server = new HubServer(storage, time, extraArgs, ownsStorage: false);
        await server.Boot();
        return server;
    }

    private async Task Boot()
    {
        string[] args =
        [
            "--urls", "http://127.0.0.1:0",
            "--Logging:LogLevel:Default=Warning",
            .. Storage.HubArgs,
            .. _extraArgs,
        ];
        _app = HubApp.Build(args, Time);
        await _app.StartAsync();
        var addresses = _app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses;
        BaseAddress = new Uri(addresses.First());
        Client = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
    }

    /// <summary>Stops the hub gracefully and starts it again on the same data file.</summary>
    public async Task Restart()
    {
        await Stop();
        await Boot();
    }

    public async Task Stop()
    {
        Client?.Dispose();
        if (_app is not null)
        {
            await _app.StopAsync();
            await _app.DisposeAsync();
            _app = null;
        }
    }

    /// <summary>Advances the injected clock and waits until the engine has run a batch at the new time.</summary>
    public async Task Advance(TimeSpan by)
    {
        Time.Advance(by);
        // A read goes through the sequencing loop, so once it returns the loop has decided expiry at the new time.
        (await Client.GetAsync("/v1/locations")).EnsureSuccessStatusCode();
    }

    public async ValueTask DisposeAsync()
    {
        await Stop();
        if (_ownsStorage)
        {
            await Storage.DisposeAsync();
        }
    }

    // ------------------------------------------------------------------ helpers for tests

    public Task<HttpResponseMessage> Put(string path, object body) => Client.PutAsJsonAsync(path, body);

    public Task<HttpResponseMessage> Post(string path, object body) => Client.PostAsJsonAsync(path, body);

    public Task<HttpResponseMessage> PostRaw(string path, string json) =>
        Client.PostAsync(path, new StringContent(json, Encoding.UTF8, "application/json"));

    public async Task<JsonElement> GetJson(string path)
    {
        var response = await Client.GetAsync(path);
        Assert.True(response.IsSuccessStatusCode, $"GET {path} answered {(int)response.StatusCode}: {await response.Content.ReadAsStringAsync()}");
        return await Json(response);
    }

    public static async Task<JsonElement> Json(HttpResponseMessage response) =>
        JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();

    /// <summary>Declares locations and a channel that sources from them.</summary>
    public async Task Setup(string channelId = "web", object? channelExtras = null, params string[] locations)
    {
        if (locations.Length == 0)
        {
            locations = ["WH1", "S1"];
        }
        foreach (var l in locations)
        {
            (await Put($"/v1/locations/{l}", new { name = "Location " + l, type = l.StartsWith('S') ? "store" : "warehouse" })).EnsureSuccessStatusCode();
        }
        var channel = new Dictionary<string, object?> { ["name"] = "Channel " + channelId, ["locations"] = locations };
        if (channelExtras is not null)
        {
            foreach (var p in channelExtras.GetType().GetProperties())
            {
                channel[p.Name] = p.GetValue(channelExtras);
            }
        }
        (await Put($"/v1/channels/{channelId}", channel)).EnsureSuccessStatusCode();
    }

    /// <summary>Posts events and returns their statuses in order.</summary>
    public async Task<string[]> Events(params object[] events)
    {
        var response = await Post("/v1/events", new { events });
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"POST /v1/events answered {(int)response.StatusCode}: {body}");
        return JsonDocument.Parse(body).RootElement.GetProperty("results").EnumerateArray()
            .Select(r => r.GetProperty("status").GetString()!).ToArray();
    }

    private static int _eventCounter;

    /// <summary>A valid event; fields can be overridden by name.</summary>
    public static Dictionary<string, object?> Event(string type, string sku, string locationId, long quantity, DateTimeOffset? occurredAt = null,
        string? eventId = null, string source = "wms")
    {
        return new Dictionary<string, object?>
        {
            ["eventId"] = eventId ?? "ev-" + Interlocked.Increment(ref _eventCounter),
            ["type"] = type,
            ["sku"] = sku,
            ["locationId"] = locationId,
            ["quantity"] = quantity,
            ["occurredAt"] = (occurredAt ?? Epoch).ToString("O"),
            ["source"] = source,
        };
    }

    /// <summary>Every ledger entry of a position, following the cursor through all pages.</summary>
    public static async Task<List<JsonElement>> WholeLedger(HttpClient client, string sku, string locationId)
    {
        var entries = new List<JsonElement>();
        string? after = null;
        do
        {
            var page = JsonDocument.Parse(await client.GetStringAsync(
                $"/v1/positions/{sku}/{locationId}/ledger?limit=1000{(after is null ? "" : "&after=" + after)}")).RootElement;
            entries.AddRange(page.GetProperty("entries").EnumerateArray().Select(e => e.Clone()));
            after = page.TryGetProperty("next", out var next) ? next.GetString() : null;
        }
        while (after is not null);
        return entries;
    }

    /// <summary>One position's quantities from GET /v1/availability/{sku}.</summary>
    public async Task<JsonElement> Position(string sku, string locationId)
    {
        var view = await GetJson($"/v1/availability/{sku}");
        return view.GetProperty("locations").EnumerateArray().Single(l => l.GetProperty("locationId").GetString() == locationId);
    }

    /// <summary>A channel's ATS for a SKU from GET /v1/availability/{sku}.</summary>
    public async Task<long> Ats(string sku, string channelId)
    {
        var view = await GetJson($"/v1/availability/{sku}");
        return view.GetProperty("channels").EnumerateArray().Single(c => c.GetProperty("channelId").GetString() == channelId)
            .GetProperty("available").GetInt64();
    }
}
