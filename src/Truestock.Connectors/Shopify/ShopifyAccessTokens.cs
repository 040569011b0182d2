using System.Net;
using System.Text.Json;

namespace Truestock.Connectors.Shopify;

/// <summary>An access token, or why there is none.</summary>
internal readonly record struct ShopifyTokenResult(string? Token, PublishStatus Status, string? Error)
{
    public static ShopifyTokenResult Ok(string token) => new(token, PublishStatus.Accepted, null);
}

/// <summary>
/// Supplies the <c>X-Shopify-Access-Token</c> value. A credential set either holds a fixed
/// <c>accessToken</c> (an offline token or a legacy custom app's Admin API token), or a
/// <c>clientId</c> and <c>clientSecret</c> for the client credentials grant, whose tokens expire
/// (24 hours) and are fetched again before they do and once after a 401. Secrets never appear in
/// errors. Thread-safe.
/// </summary>
internal sealed class ShopifyAccessTokens
{
    /// <summary>A token this close to its expiry is fetched again, so no call races the expiry.</summary>
    private static readonly TimeSpan RefreshMargin = TimeSpan.FromMinutes(5);
    private const int TokenResponseBytesMax = 64 * 1024;

    private readonly ConnectorContext _context;
    private readonly Uri _tokenUrl;
    private readonly TimeSpan _timeout;
    private readonly ConnectorCounters _counters;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private string? _token;
    private DateTimeOffset _expiresAt;

    public ShopifyAccessTokens(ConnectorContext context, Uri tokenUrl, TimeSpan timeout, ConnectorCounters counters)
    {
        _context = context;
        _tokenUrl = tokenUrl;
        _timeout = timeout;
        _counters = counters;
    }

    /// <summary>True when tokens come from the client credentials grant (so a 401 is worth one refresh).</summary>
    public bool CanRefresh => string.IsNullOrEmpty(_context.Credential("accessToken"))
        && !string.IsNullOrEmpty(_context.Credential("clientId"))
        && !string.IsNullOrEmpty(_context.Credential("clientSecret"));

    /// <summary>A message when the credential set holds neither kind of credential; null otherwise.</summary>
    public string? ConfigurationError() =>
        !string.IsNullOrEmpty(_context.Credential("accessToken")) || CanRefresh
            ? null
            : $"the credential set of channel '{_context.ChannelId}' holds neither \"accessToken\" nor \"clientId\" and \"clientSecret\".";

    /// <summary>Forgets <paramref name="token"/> after Shopify refused it, so the next call fetches a new one.</summary>
    public void Invalidate(string token)
    {
        if (string.Equals(Volatile.Read(ref _token), token, StringComparison.Ordinal))
        {
            Volatile.Write(ref _token, null);
        }
    }

    public async Task<ShopifyTokenResult> GetAsync(CancellationToken cancellationToken)
    {
        var fixedToken = _context.Credential("accessToken");
        if (!string.IsNullOrEmpty(fixedToken))
        {
            return ShopifyTokenResult.Ok(fixedToken);
        }
        if (!CanRefresh)
        {
            return new ShopifyTokenResult(null, PublishStatus.Permanent, ConfigurationError());
        }
        await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var current = Volatile.Read(ref _token);
            if (current is not null && _context.Time.GetUtcNow() < _expiresAt - RefreshMargin)
            {
                return ShopifyTokenResult.Ok(current);
            }
            return await RequestAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _gate.Release();
        }
    }

    private async Task<ShopifyTokenResult> RequestAsync(CancellationToken cancellationToken)
    {
        using var content = new FormUrlEncodedContent(
        [
            new KeyValuePair<string, string>("grant_type", "client_credentials"),
            new KeyValuePair<string, string>("client_id", _context.Credential("clientId") ?? ""),
            new KeyValuePair<string, string>("client_secret", _context.Credential("clientSecret") ?? ""),
        ]);
        using var request = new HttpRequestMessage(HttpMethod.Post, _tokenUrl) { Content = content };
        request.Headers.Accept.ParseAdd("application/json");
        using var timeout = new CancellationTokenSource(_timeout, _context.Time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        Interlocked.Increment(ref _counters.Calls);
        byte[] body;
        HttpStatusCode status;
        try
        {
            using var response = await _context.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, linked.Token).ConfigureAwait(false);
            status = response.StatusCode;
            body = await ShopifyConnector.ReadBoundedAsync(response.Content, TokenResponseBytesMax, linked.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            Interlocked.Increment(ref _counters.Failures);
            return new ShopifyTokenResult(null, PublishStatus.Transient, $"the access token request timed out after {_timeout.TotalSeconds:0.#} s.");
        }
        catch (HttpRequestException e)
        {
            Interlocked.Increment(ref _counters.Failures);
            return new ShopifyTokenResult(null, PublishStatus.Transient, $"the access token request failed: {e.Message}");
        }
        catch (InvalidDataException e)
        {
            Interlocked.Increment(ref _counters.Failures);
            return new ShopifyTokenResult(null, PublishStatus.Transient, e.Message);
        }

        if ((int)status >= 500 || status == HttpStatusCode.TooManyRequests)
        {
            Interlocked.Increment(ref _counters.Failures);
            return new ShopifyTokenResult(null, PublishStatus.Transient, $"the access token request answered HTTP {(int)status}: {ShopifyConnector.ErrorText(body)}");
        }
        if (status != HttpStatusCode.OK)
        {
            Interlocked.Increment(ref _counters.Failures);
            return new ShopifyTokenResult(null, PublishStatus.Permanent, $"the access token request answered HTTP {(int)status}: {ShopifyConnector.ErrorText(body)}");
        }
        try
        {
            using var json = JsonDocument.Parse(body);
            var root = json.RootElement;
            var token = root.ValueKind == JsonValueKind.Object && root.TryGetProperty("access_token", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
            if (string.IsNullOrEmpty(token))
            {
                Interlocked.Increment(ref _counters.Failures);
                return new ShopifyTokenResult(null, PublishStatus.Transient, "the access token response held no access_token.");
            }
            // Shopify states the lifetime in seconds; without one, assume the documented 24 hours.
            var lifetime = root.TryGetProperty("expires_in", out var e) && e.ValueKind == JsonValueKind.Number && e.TryGetDouble(out var seconds) && seconds > 0
                ? TimeSpan.FromSeconds(seconds)
                : TimeSpan.FromHours(24);
            _expiresAt = _context.Time.GetUtcNow() + lifetime;
            Volatile.Write(ref _token, token);
            return ShopifyTokenResult.Ok(token);
        }
        catch (JsonException)
        {
            Interlocked.Increment(ref _counters.Failures);
            return new ShopifyTokenResult(null, PublishStatus.Transient, "the access token response was not JSON.");
        }
    }
}
