using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Truestock.Simulation.Demo;

/// <summary>An error the demo explains to the user (what happened and what to do); no stack trace.</summary>
internal sealed class DemoException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>The answer of the hub: status and JSON body (null when the body is empty or not JSON).</summary>
internal sealed record HubAnswer(HttpStatusCode Status, JsonNode? Body)
{
    public bool Ok => (int)Status is >= 200 and < 300;

    /// <summary>The problem's detail (RFC 9457) or the status, for messages.</summary>
    public string Problem => Body?["detail"]?.GetValue<string>() is { } detail ? $"{(int)Status} {detail}" : $"{(int)Status} {Status}";
}

/// <summary>
/// The demo talks to the hub only through its public HTTP API, like any client would. One
/// HttpClient with a bounded connection pool and a timeout, so a stuck hub cannot pile up requests.
/// </summary>
internal sealed class HubClient : IDisposable
{
    private readonly HttpClient _http;

    public HubClient(Uri baseAddress)
    {
        BaseAddress = baseAddress;
        _http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = 64, PooledConnectionLifetime = TimeSpan.FromMinutes(5) })
        {
            BaseAddress = baseAddress,
            Timeout = TimeSpan.FromSeconds(15),
        };
    }

    public Uri BaseAddress { get; }

    public Task<HubAnswer> GetAsync(string path, CancellationToken ct) => SendAsync(HttpMethod.Get, path, null, ct);

    public Task<HubAnswer> PostAsync(string path, JsonNode? body, CancellationToken ct) => SendAsync(HttpMethod.Post, path, body, ct);

    public Task<HubAnswer> PutAsync(string path, JsonNode body, CancellationToken ct) => SendAsync(HttpMethod.Put, path, body, ct);

    /// <summary>GET of a text document (the Prometheus metrics).</summary>
    public async Task<string> GetTextAsync(string path, CancellationToken ct)
    {
        using var response = await _http.GetAsync(new Uri(path, UriKind.Relative), ct);
        response.EnsureSuccessStatusCode();
        return await response.Content.ReadAsStringAsync(ct);
    }

    /// <summary>A write the demo cannot go on without (master data, opening stock): anything but 2xx stops the demo.</summary>
    public async Task<JsonNode?> MustAsync(HttpMethod method, string path, JsonNode body, CancellationToken ct)
    {
        var answer = await SendAsync(method, path, body, ct);
        if (!answer.Ok)
        {
            throw new DemoException($"The hub refused {method} {path}: {answer.Problem}. This is a bug in the demo's master data; please report it with this message.");
        }
        return answer.Body;
    }

    private async Task<HubAnswer> SendAsync(HttpMethod method, string path, JsonNode? body, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(method, new Uri(path, UriKind.Relative));
        if (body is not null)
        {
            request.Content = new StringContent(body.ToJsonString(), Encoding.UTF8, "application/json");
        }
        using var response = await _http.SendAsync(request, ct);
        var text = await response.Content.ReadAsStringAsync(ct);
        JsonNode? json = null;
        if (text.Length > 0)
        {
            try
            {
                json = JsonNode.Parse(text);
            }
            catch (JsonException)
            {
                // Not JSON (should not happen on /v1): the status alone tells what went wrong.
            }
        }
        return new HubAnswer(response.StatusCode, json);
    }

    public void Dispose() => _http.Dispose();
}
