using System.Net;
using System.Text.Json;

namespace Truestock.Connectors.Amazon;

/// <summary>The result of asking for an access token: the token, or why there is none.</summary>
internal readonly record struct TokenResult(string? Token, PublishStatus FailureStatus, string? Error)
{
    public static TokenResult Failed(PublishStatus status, string error) => new(null, status, error);
}

/// <summary>
/// Exchanges the channel's Login with Amazon (LWA) refresh token for access tokens and caches
/// each until shortly before it expires. One refresh at a time: callers that find the cache
/// empty wait for the refresh in flight instead of starting their own. Secrets never appear
/// in errors or logs.
/// </summary>
internal sealed class LwaTokenProvider : IDisposable
{
    /// <summary>How much of a token's lifetime is given up so it never expires in flight (at most a minute).</summary>
    private static readonly TimeSpan RefreshMarginMax = TimeSpan.FromMinutes(1);

    /// <summary>The most bytes of a token response read (an access token is at most 2048 bytes).</summary>
    private const int ResponseBytesMax = 64 * 1024;

    private readonly AmazonSettings _settings;
    private readonly ConnectorContext _context;
    private readonly ConnectorCounters _counters;
    private readonly SemaphoreSlim _refresh = new(1, 1);
    private readonly Lock _gate = new();
    private string? _token;
    private DateTimeOffset _refreshAt;

    public LwaTokenProvider(AmazonSettings settings, ConnectorContext context, ConnectorCounters counters)
    {
        _settings = settings;
        _context = context;
        _counters = counters;
    }

    /// <summary>Access tokens fetched from the token endpoint so far (for tests and metrics).</summary>
    public int Refreshes;

    /// <summary>Returns a valid access token, refreshing it when it is missing or about to expire.</summary>
    public async Task<TokenResult> GetAsync(CancellationToken cancellationToken)
    {
        if (Cached() is { } cached)
        {
            return new TokenResult(cached, PublishStatus.Accepted, null);
        }
        await _refresh.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            // Another caller may have refreshed while this one waited.
            if (Cached() is { } refreshed)
            {
                return new TokenResult(refreshed, PublishStatus.Accepted, null);
            }
            return await FetchAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _refresh.Release();
        }
    }

    /// <summary>
    /// Forgets <paramref name="token"/> after the API rejected it, so the next caller refreshes.
    /// A token that was already replaced is left alone, so a burst of rejections refreshes once.
    /// </summary>
    public void Invalidate(string token)
    {
        lock (_gate)
        {
            if (string.Equals(_token, token, StringComparison.Ordinal))
            {
                _token = null;
            }
        }
    }

    public void Dispose() => _refresh.Dispose();

    private string? Cached()
    {
        lock (_gate)
        {
            return _token is not null && _context.Time.GetUtcNow() < _refreshAt ? _token : null;
        }
    }

    private async Task<TokenResult> FetchAsync(CancellationToken cancellationToken)
    {
        var clientId = _context.Credential("clientId");
        var clientSecret = _context.Credential("clientSecret");
        var refreshToken = _context.Credential("refreshToken");
        var missing = clientId is null ? "clientId" : clientSecret is null ? "clientSecret" : refreshToken is null ? "refreshToken" : null;
        if (missing is not null)
        {
            return TokenResult.Failed(PublishStatus.Permanent,
                $"LWA credential '{missing}' is not set in credential set '{_settings.Credentials}' of channel '{_context.ChannelId}'.");
        }

        using var request = new HttpRequestMessage(HttpMethod.Post, _settings.TokenUrl)
        {
            Content = new FormUrlEncodedContent(
            [
                new("grant_type", "refresh_token"),
                new("refresh_token", refreshToken!),
                new("client_id", clientId!),
                new("client_secret", clientSecret!),
            ]),
        };
        Interlocked.Increment(ref _counters.Calls);
        using var timeout = new CancellationTokenSource(_settings.Timeout, _context.Time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        HttpStatusCode status;
        string body;
        try
        {
            using var response = await _context.Http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, linked.Token).ConfigureAwait(false);
            status = response.StatusCode;
            body = await SpApiClient.ReadBoundedAsync(response.Content, ResponseBytesMax, linked.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            Interlocked.Increment(ref _counters.Failures);
            return TokenResult.Failed(PublishStatus.Transient, $"LWA token request timed out after {_settings.Timeout.TotalSeconds:0.#} s.");
        }
        catch (HttpRequestException ex)
        {
            Interlocked.Increment(ref _counters.Failures);
            return TokenResult.Failed(PublishStatus.Transient, $"LWA token request failed: {ex.Message}");
        }
        catch (ResponseTooLargeException)
        {
            Interlocked.Increment(ref _counters.Failures);
            return TokenResult.Failed(PublishStatus.Transient, "LWA token response exceeded its size limit.");
        }

        if (status == HttpStatusCode.OK && TryReadToken(body, out var token, out var lifetime))
        {
            var margin = TimeSpan.FromTicks(Math.Min(RefreshMarginMax.Ticks, lifetime.Ticks / 10));
            lock (_gate)
            {
                _token = token;
                _refreshAt = _context.Time.GetUtcNow() + lifetime - margin;
            }
            Interlocked.Increment(ref Refreshes);
            return new TokenResult(token, PublishStatus.Accepted, null);
        }

        Interlocked.Increment(ref _counters.Failures);
        var (code, description) = ReadOAuthError(body);
        var text = $"LWA token request answered {(int)status}{(code is null ? "" : $" {code}")}{(description is null ? "" : $": {description}")}";
        // OAuth 2.0 answers 400/401 for bad client credentials or a revoked refresh token: no retry fixes those.
        var permanent = status is HttpStatusCode.BadRequest or HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden;
        return TokenResult.Failed(permanent ? PublishStatus.Permanent : PublishStatus.Transient, text);
    }

    private static bool TryReadToken(string body, out string token, out TimeSpan lifetime)
    {
        token = "";
        lifetime = TimeSpan.FromHours(1);
        try
        {
            using var document = JsonDocument.Parse(body);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object
                || !root.TryGetProperty("access_token", out var accessToken)
                || accessToken.ValueKind != JsonValueKind.String
                || string.IsNullOrEmpty(accessToken.GetString()))
            {
                return false;
            }
            token = accessToken.GetString()!;
            if (root.TryGetProperty("expires_in", out var expiresIn) && expiresIn.TryGetInt32(out var seconds) && seconds > 0)
            {
                lifetime = TimeSpan.FromSeconds(seconds);
            }
            return true;
        }
        catch (JsonException)
        {
            return false;
        }
    }

    private static (string? Code, string? Description) ReadOAuthError(string body)
    {
        try
        {
            using var document = JsonDocument.Parse(body);
            var root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                return (null, null);
            }
            var code = root.TryGetProperty("error", out var error) && error.ValueKind == JsonValueKind.String ? error.GetString() : null;
            var description = root.TryGetProperty("error_description", out var text) && text.ValueKind == JsonValueKind.String ? text.GetString() : null;
            return (code, SpApiClient.Truncate(description));
        }
        catch (JsonException)
        {
            return (null, null);
        }
    }
}
