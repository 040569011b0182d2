using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.RateLimiting;

namespace Truestock.Server.Http;

/// <summary>
/// Per-client token buckets on /v1: one bucket per API key (or per remote address when no key
/// is sent), refilled every second. A client over its rate gets 429 with Retry-After; health
/// and metrics are never limited, so monitoring keeps working under load.
/// </summary>
internal static class ClientRateLimit
{
    public static void Configure(RateLimiterOptions options, int requestsPerSecond)
    {
        options.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
        options.GlobalLimiter = PartitionedRateLimiter.Create<HttpContext, string>(http =>
        {
            if (requestsPerSecond <= 0 || !http.Request.Path.StartsWithSegments("/v1", StringComparison.Ordinal))
            {
                return RateLimitPartition.GetNoLimiter("unlimited");
            }
            return RateLimitPartition.GetTokenBucketLimiter(ClientKey(http), _ => new TokenBucketRateLimiterOptions
            {
                TokenLimit = requestsPerSecond,
                TokensPerPeriod = requestsPerSecond,
                ReplenishmentPeriod = TimeSpan.FromSeconds(1),
                QueueLimit = 0,
                AutoReplenishment = true,
            });
        });
        options.OnRejected = async (context, cancellationToken) =>
        {
            var retryAfter = context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var wait) ? Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds)) : 1;
            context.HttpContext.Response.Headers.RetryAfter = retryAfter.ToString(CultureInfo.InvariantCulture);
            await Problems.Create(StatusCodes.Status429TooManyRequests, "rate-limited", "Too many requests.",
                $"This client is limited to {requestsPerSecond} requests per second. Retry after {retryAfter} s, or batch events (up to 1,000 per request).")
                .ExecuteAsync(context.HttpContext);
        };
    }

    private static string ClientKey(HttpContext http)
    {
        var authorization = http.Request.Headers.Authorization.ToString();
        if (authorization.Length > 0)
        {
            // Partition by a digest so that the key itself is never kept as a dictionary key.
            return "key:" + Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(authorization)))[..32];
        }
        return "ip:" + (http.Connection.RemoteIpAddress?.ToString() ?? "unknown");
    }
}
