using System.Buffers.Text;
using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Options;
using Truestock.Server.Http;
using Truestock.Server.Storage;

namespace Truestock.Server.Exceptions;

/// <summary>
/// The opaque <c>next</c> cursor of the exception list: where each source stopped, base64url-encoded behind a "c". A
/// plain number is the cursor of the engine-only list this one extends (the last engine exception id), still accepted.
/// </summary>
internal static class ExceptionCursor
{
    private const string Version = "1";

    public static string Encode(ExceptionPosition p)
    {
        var text = string.Join('|',
            Version,
            p.EngineId.ToString(CultureInfo.InvariantCulture),
            p.DriftMs.ToString(CultureInfo.InvariantCulture),
            p.DriftId.ToString(CultureInfo.InvariantCulture),
            p.ChannelMs.ToString(CultureInfo.InvariantCulture),
            p.ErpMs.ToString(CultureInfo.InvariantCulture),
            p.ErpId.ToString(CultureInfo.InvariantCulture),
            p.ChannelId ?? "",
            p.ChannelSku ?? "");
        return "c" + Base64Url.EncodeToString(Encoding.UTF8.GetBytes(text));
    }

    /// <summary>Decodes a cursor this hub returned; null when it is not one.</summary>
    public static ExceptionPosition? Decode(string cursor)
    {
        if (cursor.Length < 2 || cursor[0] != 'c' || !Base64Url.IsValid(cursor.AsSpan(1)))
        {
            return null;
        }
        var bytes = Base64Url.DecodeFromChars(cursor.AsSpan(1));
        if (!System.Text.Unicode.Utf8.IsValid(bytes))
        {
            return null;
        }
        var text = Encoding.UTF8.GetString(bytes);
        // The SKU is last and may itself contain '|', so it takes the rest of the text.
        var parts = text.Split('|', 9);
        if (parts.Length != 9 || parts[0] != Version)
        {
            return null;
        }
        var numbers = new long[6];
        for (var i = 0; i < numbers.Length; i++)
        {
            if (!long.TryParse(parts[i + 1], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out numbers[i]))
            {
                return null;
            }
        }
        var channelId = parts[7].Length == 0 ? null : parts[7];
        var sku = parts[8].Length == 0 ? null : parts[8];
        if ((channelId is null) != (sku is null) || (channelId is not null && (!JsonInput.IsId(channelId) || !JsonInput.IsSku(sku!))))
        {
            return null;
        }
        return new ExceptionPosition(numbers[0], numbers[1], numbers[2], numbers[3], channelId, sku, numbers[4], numbers[5]);
    }
}

/// <summary>
/// Who makes a change, for the audit trail: the name of the API key the request carries, or "anonymous" when the hub runs
/// without keys. The scope filter has already checked the key; this only finds its name (ApiKeys keeps names private).
/// </summary>
internal sealed class ExceptionActors(IOptions<HubOptions> options)
{
    public const string Anonymous = "anonymous";

    private readonly (byte[] Digest, string Name)[] _keys = options.Value.ApiKeys
        .Where(k => !string.IsNullOrEmpty(k.Key))
        .Select(k => (SHA256.HashData(Encoding.UTF8.GetBytes(k.Key)), string.IsNullOrWhiteSpace(k.Name) ? "unnamed-key" : k.Name))
        .ToArray();

    public string Of(HttpContext http)
    {
        var header = http.Request.Headers.Authorization.ToString();
        if (_keys.Length == 0 || !header.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase) || header.Length <= 7)
        {
            return Anonymous;
        }
        var digest = SHA256.HashData(Encoding.UTF8.GetBytes(header[7..].Trim()));
        foreach (var (d, name) in _keys)
        {
            if (CryptographicOperations.FixedTimeEquals(d, digest))
            {
                return name;
            }
        }
        return Anonymous;
    }
}
