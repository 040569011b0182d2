using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;

namespace Truestock.Bench;

/// <summary>
/// One load generator's HTTP client: a pool with as many connections as there are workers, so
/// that every concurrent buyer has its own connection, as separate shoppers would.
/// </summary>
public sealed class LoadClient : IDisposable
{
    private static readonly MediaTypeHeaderValue JsonType = new("application/json");

    public LoadClient(Uri baseAddress, int connections)
    {
        Connections = connections;
        Http = new HttpClient(new SocketsHttpHandler
        {
            UseProxy = false,
            UseCookies = false,
            AllowAutoRedirect = false,
            MaxConnectionsPerServer = connections,
            PooledConnectionIdleTimeout = TimeSpan.FromMinutes(10),
            PooledConnectionLifetime = Timeout.InfiniteTimeSpan,
        })
        {
            BaseAddress = baseAddress,
            // Long enough for the slowest baseline request under 1,000 concurrent buyers, short enough that a hang ends the run.
            Timeout = TimeSpan.FromMinutes(2),
        };
    }

    public int Connections { get; }

    public HttpClient Http { get; }

    /// <summary>Opens the connections before the clock starts, so connection set-up is not measured.</summary>
    public async Task Warm()
    {
        await Task.WhenAll(Enumerable.Range(0, Connections).Select(async _ =>
        {
            using var r = await Http.GetAsync("/health/ready");
        }));
    }

    /// <summary>Sends one request and returns its status and, when asked, its body.</summary>
    public async Task<(int Status, string? Body)> Send(HttpMethod method, string path, byte[]? json, bool readBody = false)
    {
        using var request = new HttpRequestMessage(method, path);
        if (json is not null)
        {
            request.Content = new ByteArrayContent(json);
            request.Content.Headers.ContentType = JsonType;
        }
        using var response = await Http.SendAsync(request, HttpCompletionOption.ResponseContentRead);
        var body = readBody ? await response.Content.ReadAsStringAsync() : null;
        return ((int)response.StatusCode, body);
    }

    public void Dispose() => Http.Dispose();
}

/// <summary>Counts and times the requests of one scenario run, per worker without locks.</summary>
public sealed class LoadRun
{
    private readonly ConcurrentDictionary<int, long> _statuses = new();
    private long _errors;

    public LoadRun(LoadClient client, int workers)
    {
        Client = client;
        Latencies = new Latencies(workers);
    }

    public LoadClient Client { get; }

    public Latencies Latencies { get; }

    public long Errors => Interlocked.Read(ref _errors);

    public IReadOnlyDictionary<int, long> Statuses => _statuses;

    /// <summary>Sends and times one request; a transport failure counts as status 0.</summary>
    public async Task<(int Status, string? Body)> Send(int worker, HttpMethod method, string path, byte[]? json, bool readBody = false)
    {
        var start = Stopwatch.GetTimestamp();
        int status;
        string? body = null;
        try
        {
            (status, body) = await Client.Send(method, path, json, readBody);
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or IOException)
        {
            status = 0;
        }
        Latencies.Add(worker, Stopwatch.GetTimestamp() - start);
        _statuses.AddOrUpdate(status, 1, (_, n) => n + 1);
        if (status is 0 or >= 500)
        {
            Interlocked.Increment(ref _errors);
        }
        return (status, body);
    }

    public long Count(int status) => _statuses.GetValueOrDefault(status);

    public string StatusText() =>
        string.Join(", ", _statuses.OrderBy(kv => kv.Key).Select(kv => $"{kv.Key}: {kv.Value.ToString(CultureInfo.InvariantCulture)}"));

    /// <summary>Runs <paramref name="workers"/> loops concurrently until each returns.</summary>
    public static Task Workers(int workers, Func<int, Task> loop) =>
        Task.WhenAll(Enumerable.Range(0, workers).Select(w => Task.Run(() => loop(w))));
}

/// <summary>Builds request bodies as UTF-8 bytes, with no serializer in the measured path.</summary>
public static class Bodies
{
    public static byte[] Utf8(string s) => Encoding.UTF8.GetBytes(s);

    public static byte[] Reservation(string id, string channel, string sku, long quantity) =>
        Utf8(string.Create(CultureInfo.InvariantCulture,
            $$"""{"reservationId":"{{id}}","channelId":"{{channel}}","lines":[{"sku":"{{sku}}","quantity":{{quantity}}}]}"""));

    public static byte[] Location(string type) => Utf8($$"""{"name":"bench","type":"{{type}}"}""");

    public static byte[] Channel(IEnumerable<string> locations) =>
        Utf8($$"""{"name":"bench","locations":[{{string.Join(',', locations.Select(l => "\"" + l + "\""))}}]}""");

    /// <summary>One event as JSON; <paramref name="occurredAt"/> is UTC.</summary>
    public static void Event(StringBuilder sb, string id, string type, string sku, string location, long quantity, DateTimeOffset occurredAt)
    {
        sb.Append(CultureInfo.InvariantCulture,
            $$"""{"eventId":"{{id}}","type":"{{type}}","sku":"{{sku}}","locationId":"{{location}}","quantity":{{quantity}},"occurredAt":"{{occurredAt.UtcDateTime:yyyy-MM-dd'T'HH:mm:ss.fff'Z'}}","source":"bench"{{(type == "adjusted" ? ",\"reason\":\"bench\"" : "")}}}""");
    }

    /// <summary>Wraps events into one POST /v1/events body.</summary>
    public static byte[] Events(IEnumerable<Action<StringBuilder>> events)
    {
        var sb = new StringBuilder(256 * 1024);
        sb.Append("{\"events\":[");
        var first = true;
        foreach (var write in events)
        {
            if (!first)
            {
                sb.Append(',');
            }
            first = false;
            write(sb);
        }
        sb.Append("]}");
        return Utf8(sb.ToString());
    }
}

/// <summary>Set-up calls to either server; both speak the same subset of the hub's API.</summary>
public static class Setup
{
    public static async Task Put(HttpClient http, string path, byte[] body)
    {
        using var content = new ByteArrayContent(body);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        using var r = await http.PutAsync(path, content);
        if (!r.IsSuccessStatusCode)
        {
            throw new InvalidOperationException($"PUT {path} answered {(int)r.StatusCode}: {await r.Content.ReadAsStringAsync()}");
        }
    }

    /// <summary>Posts prepared event batches with a few concurrent senders; returns the events/s achieved.</summary>
    public static async Task<(double Seconds, long Events)> PostBatches(HttpClient http, IReadOnlyList<(byte[] Body, int Count)> batches, int senders, string label)
    {
        var next = -1;
        long events = 0;
        var watch = Stopwatch.StartNew();
        var lastLog = watch.Elapsed;
        await LoadRun.Workers(senders, async _ =>
        {
            int i;
            while ((i = Interlocked.Increment(ref next)) < batches.Count)
            {
                using var content = new ByteArrayContent(batches[i].Body);
                content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
                using var r = await http.PostAsync("/v1/events", content);
                if (r.StatusCode != HttpStatusCode.OK)
                {
                    throw new InvalidOperationException($"POST /v1/events answered {(int)r.StatusCode}: {await r.Content.ReadAsStringAsync()}");
                }
                var total = Interlocked.Add(ref events, batches[i].Count);
                if (watch.Elapsed - lastLog > TimeSpan.FromSeconds(10))
                {
                    lastLog = watch.Elapsed;
                    Log.Line($"  {label}: {total:N0} events posted ({total / watch.Elapsed.TotalSeconds:N0}/s)");
                }
            }
        });
        return (watch.Elapsed.TotalSeconds, events);
    }
}

/// <summary>Event batches built when a sender asks for them, so that millions of events never sit in memory at once.</summary>
public sealed class LazyBatches(int count, Func<int, (byte[] Body, int Count)> build) : IReadOnlyList<(byte[] Body, int Count)>
{
    public (byte[] Body, int Count) this[int index] => build(index);

    public int Count => count;

    public IEnumerator<(byte[] Body, int Count)> GetEnumerator()
    {
        for (var i = 0; i < count; i++)
        {
            yield return build(i);
        }
    }

    System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
}
