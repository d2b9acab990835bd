#!/usr/bin/env escript
%% -*- erlang -*-
%%! -noshell
%%
%% The real Erlang runtime as an oracle for phxd's ETF codec and
%% Phoenix.Token (docs/protocol.md §7 and Appendix A).
%% Usage: escript oracle.escript PATH/TO/phx_tokentool
%%
%%  (a) term_to_binary output decodes in phxd to the JSON this script
%%      derives from the Erlang term itself (rules of etf.h), and phxd's
%%      re-encoding is byte-identical to term_to_binary (OTP 25 atoms with
%%      --latin1-atoms, minor_version 2 otherwise) and decodes back to the
%%      same term here; id strings follow the documented rules; JSON input
%%      converts to the term Jason would give.
%%  (b) tokens minted here with crypto:pbkdf2_hmac + crypto:mac(hmac, ...)
%%      + term_to_binary verify in phxd (HS256/384/512, key options, legacy
%%      shapes, expiry and tampering outcomes).
%%  (c) tokens phxd signs verify here: HMAC recomputed and compared,
%%      binary_to_term(_, [safe]) equals the expected term, and the payload
%%      equals term_to_binary of it byte for byte.
%%  (d) Phoenix.PubSub's Redis adapter (phoenix_pubsub_redis 3.x): the
%%      adapter's exact messages, term_to_binary({3, Mode, Node, Topic,
%%      Message, Dispatcher}) plain and [compressed], decode in phxd to the
%%      broadcast and the JSON Jason would write (or "not for us" / "skip"
%%      with the adapter's :except/:only rules); what phxd's encoder
%%      publishes is the exact term_to_binary of the Broadcast message
%%      Endpoint.broadcast makes.
%% Exit status 0 when every check passes, 1 otherwise (with the failures).

-mode(compile).

main([Tool]) ->
    {ok, _} = application:ensure_all_started(crypto),
    put(tool, Tool),
    put(failures, 0),
    put(checks, 0),
    etf_to_json(),
    etf_reencode(),
    floats(),
    id_strings(),
    json_to_etf(),
    erlang_tokens_verify_in_phxd(),
    phxd_tokens_verify_in_erlang(),
    phoenix_pubsub_to_phxd(),
    phxd_to_phoenix_pubsub(),
    F = get(failures),
    io:format("~b checks, ~b failures~n", [get(checks), F]),
    halt(case F of 0 -> 0; _ -> 1 end);
main(_) ->
    io:format(standard_error, "usage: oracle.escript PATH/TO/phx_tokentool~n", []),
    halt(2).

%% ---- the terms ----

terms() ->
    Ints = [0, 1, 42, 255, 256, -1, -255, -256, 2147483647, -2147483648,
            1 bsl 31, -(1 bsl 31) - 1, 1 bsl 32, -(1 bsl 32), 1 bsl 40,
            (1 bsl 63) - 1, 1 bsl 63, -(1 bsl 63), -(1 bsl 63) - 1,
            (1 bsl 64) - 1, 1 bsl 64, -(1 bsl 64), 1700000000000,
            123456789012345678901234567890, 1 bsl 2040, (1 bsl 2048) - 1,
            1 bsl 2100, -(1 bsl 2100)],
    Bins = [<<>>, <<"hello">>, <<"José"/utf8>>, <<"😀 ok"/utf8>>,
            <<255, 0, 1>>, <<"\"\\\n\t\r\b\f", 1, 31, 127, "/">>,
            <<16#c3>>, <<"a", 16#e9, "b">>, <<0>>],
    Atoms = [ok, nil, true, false, infinity, 'é', 'déjà', '😀', '',
             'with space', 'Elixir.MyApp.User',
             list_to_atom(lists:duplicate(255, $a)),
             list_to_atom(lists:duplicate(255, 16#e9))],
    Lists = [[], [1, 2, 3], [1, 2, 300], "hi", [<<"a">>], [1, [2, [3, []]]],
             [-1], lists:seq(0, 255), lists:seq(1, 300), lists:duplicate(20000, 7),
             [nil, true, {}, #{}, 1.5]],
    Tuples = [{}, {ok, <<"x">>}, {1, {2, {3}}}, list_to_tuple(lists:seq(1, 300)),
              {a, "b", <<"c">>, [d]}],
    Maps = [#{}, #{<<"user_id">> => 42}, #{user_id => 42}, #{id => 7, admin => true},
            #{<<"a">> => #{b => [1, #{c => nil}]}, d => <<"e">>},
            #{1 => a, 1.0 => b, x => c, {1} => d, [1] => e, <<"k">> => f, #{} => g},
            #{<<"b">> => 1, <<"a">> => 2, <<"ab">> => 3, <<>> => 0},
            #{-1 => x, 1 bsl 70 => y, 2.5 => z},
            %% Map-key order is exact at any depth: {1} before {0.5}.
            #{{1} => a, {0.5} => b, [2] => c, [1.5] => d, {1, 0.5} => e, {0.5, 1} => f},
            maps:from_list([{integer_to_binary(I), I} || I <- lists:seq(1, 32)])],
    Floats = [1.5, 0.1, -0.0, 0.0, 1.0e20, 1.0e-5, 123456789.0, 5.0e-324,
              1.7976931348623157e308, 100.0, 0.0001, 1.0e15, 2 / 3, -1.0e-300],
    Ints ++ Bins ++ Atoms ++ Lists ++ Tuples ++ Maps ++ Floats ++
        [{data, #{<<"a">> => [1, 2.5, <<"s">>, {t}]}, [#{k => [<<"v">>]}]}].

%% ---- (a) ETF -> JSON, re-encoding ----

etf_to_json() ->
    [begin
         B = term_to_binary(T),
         {Status, Out} = tool(["etf2json", "--max-bignum-bytes", "512", hex(B)]),
         check({etf2json, T}, {0, json(T) ++ "\n"}, {Status, Out})
     end || T <- terms()],
    %% Limits: 2^2100 (263 bytes) is refused with the default 64-byte cap.
    {S, O} = tool(["etf2json", hex(term_to_binary(1 bsl 2100))]),
    check(bignum_default_limit, {1, "error PHX_ERR_LIMIT\n"}, {S, O}),
    %% Terms phxd does not hold (a pid, a fun, a reference, an improper
    %% list, a bitstring): well formed, so refused as PHX_ERR_DATA.
    [begin
         {S2, O2} = tool(["etf2json", hex(term_to_binary(Bad))]),
         check({refused, Bad}, {1, "error PHX_ERR_DATA\n"}, {S2, O2})
     end || Bad <- [self(), fun() -> ok end, make_ref(), [1 | 2], <<1:3>>]],
    ok.

etf_reencode() ->
    [begin
         B25 = term_to_binary(T),
         B26 = term_to_binary(T, [{minor_version, 2}]),
         {S1, O1} = tool(["etf2etf", "--latin1-atoms", "--max-bignum-bytes", "512", hex(B25)]),
         check({reencode_otp25, T}, {0, hex(B25) ++ "\n"}, {S1, O1}),
         {S2, O2} = tool(["etf2etf", "--max-bignum-bytes", "512", hex(B25)]),
         check({reencode_otp26, T}, {0, hex(B26) ++ "\n"}, {S2, O2}),
         %% And Erlang reads phxd's bytes back as the same term.
         case S2 of
             0 -> check({readback, T}, true,
                        binary_to_term(unhex(string:trim(O2)), [safe]) =:= T);
             _ -> ok
         end
     end || T <- terms()],
    ok.

%% Many floats in one list: phxd's shortest form must equal Erlang's
%% float_to_list(F, [short]) and re-encode to the same bytes.
floats() ->
    rand:seed(exsss, {17, 42, 2024}),
    Random = [rand:uniform_real() * math:pow(10, rand:uniform(40) - 20) || _ <- lists:seq(1, 300)],
    %% Random bit patterns; NaN and infinities do not match <<F/float>>.
    Bits = [F || _ <- lists:seq(1, 700), <<F/float>> <- [<<(rand:uniform(1 bsl 64) - 1):64>>]],
    Powers = [math:pow(10, E) || E <- lists:seq(-30, 30)] ++
             [float(1 bsl E) || E <- lists:seq(0, 80)] ++
             [1.0e21, 1.0e22, 1.0e23, 9007199254740993.0, 0.3, 1.0e-323],
    Fs = Random ++ [-F || F <- Random] ++ Bits ++ Powers,
    T = Fs,
    {S, O} = tool(["etf2json", hex(term_to_binary(T))]),
    check(floats_json, {0, json(T) ++ "\n"}, {S, O}),
    {S2, O2} = tool(["etf2etf", hex(term_to_binary(T))]),
    check(floats_reencode, {0, hex(term_to_binary(T)) ++ "\n"}, {S2, O2}),
    io:format("floats: ~b values compared~n", [length(Fs)]),
    ok.

id_strings() ->
    Cases = [{42, "42"}, {-1, "-1"}, {1 bsl 64, "18446744073709551616"},
             {<<"abc">>, "abc"}, {<<"José"/utf8>>, "José"}, {foo, "foo"}, {nil, "nil"},
             {'é', "é"}, {1.5, "1.5"}, {{1, <<"x">>}, "[1,\"x\"]"}, {"hi", "[104,105]"},
             {#{<<"a">> => 1}, "{\"a\":1}"}],
    [begin
         {S, O} = tool(["idstring", hex(term_to_binary(T))]),
         check({idstring, T}, {0, Want ++ "\n"}, {S, O})
     end || {T, Want} <- Cases],
    ok.

%% JSON text -> term in phxd -> bytes, compared with term_to_binary of the
%% term Jason would decode that JSON to.
json_cases() ->
    [{"42", 42}, {"-1", -1}, {"-0", 0}, {"18446744073709551616", 1 bsl 64},
     {"-9223372036854775809", -(1 bsl 63) - 1},
     {"123456789012345678901234567890", 123456789012345678901234567890},
     {"1.5", 1.5}, {"1e2", 100.0}, {"-2.5E-3", -0.0025}, {"0.1", 0.1},
     {"\"hello\"", <<"hello">>}, {"\"Jos\\u00e9\"", <<"José"/utf8>>},
     {"\"\\ud83d\\ude00\"", <<"😀"/utf8>>}, {"\"a\\\"b\\\\c\\/\"", <<"a\"b\\c/">>},
     {"null", nil}, {"true", true}, {"false", false},
     {"[]", []}, {"[1,2,3]", [1, 2, 3]}, {"[1,2,300]", [1, 2, 300]},
     {"[\"a\",null]", [<<"a">>, nil]}, {"[0,255]", [0, 255]}, {"[-1]", [-1]},
     {"{}", #{}}, {"{\"user_id\":42}", #{<<"user_id">> => 42}},
     {"{\"b\":{\"c\":[1.5,null]},\"a\":[],\"ab\":1}",
      #{<<"b">> => #{<<"c">> => [1.5, nil]}, <<"a">> => [], <<"ab">> => 1}},
     {"{\"a\":1,\"a\":2}", #{<<"a">> => 2}}].

json_to_etf() ->
    [begin
         {S, O} = tool(["json2etf", Json]),
         check({json2etf, Json}, {0, hex(term_to_binary(T, [{minor_version, 2}])) ++ "\n"}, {S, O}),
         {S2, O2} = tool(["json2etf", "--latin1-atoms", Json]),
         check({json2etf_otp25, Json}, {0, hex(term_to_binary(T)) ++ "\n"}, {S2, O2})
     end || {Json, T} <- json_cases()],
    ok.

%% ---- (b) tokens minted by Erlang ----

-define(SECRET, "abcdefghijklmnopqrstuvwxyz012345abcdefghijklmnopqrstuvwxyz012345").
-define(NOW, 1700000000000).

mint(Alg, KeyOpts, Salt, Payload) ->
    {Iter, Len, KDigest} = KeyOpts,
    Key = crypto:pbkdf2_hmac(KDigest, <<?SECRET>>, Salt, Iter, Len),
    Header = case Alg of sha256 -> <<"SFMyNTY">>; sha384 -> <<"SFMzODQ">>; sha512 -> <<"SFM1MTI">> end,
    Plain = <<Header/binary, ".", (b64url(Payload))/binary>>,
    Sig = b64url(crypto:mac(hmac, Alg, Key, Plain)),
    <<Plain/binary, ".", Sig/binary>>.

verify_args(KeyOpts, Salt, Extra, Token) ->
    {Iter, Len, KDigest} = KeyOpts,
    ["token", "verify", "--secret-key-base", ?SECRET, "--salt", binary_to_list(Salt),
     "--key-iterations", integer_to_list(Iter), "--key-length", integer_to_list(Len),
     "--key-digest", atom_to_list(KDigest), "--now-ms", integer_to_list(?NOW)] ++
        Extra ++ [binary_to_list(Token)].

token_data() ->
    [42, -1, 0, 1 bsl 64, -(1 bsl 70), 123456789012345678901234567890,
     <<"hello">>, <<"José"/utf8>>, <<255, 1>>, nil, true, ok, 'é', 1.5, 0.1,
     [1, 2, 3], [1, 2, 300], "charlist", [<<"a">>, #{}],
     #{<<"user_id">> => 42}, #{user_id => 42}, #{id => 7, admin => true},
     #{<<"a">> => #{b => [1, 2.5, nil]}, c => {<<"d">>, e}}, {ok, <<"x">>}].

erlang_tokens_verify_in_phxd() ->
    Default = {1000, 32, sha256},
    Salt = <<"user socket">>,
    Signed = ?NOW - 1000,
    %% Every data term under every header, current format.
    [begin
         Tok = mint(Alg, Default, Salt, term_to_binary({D, Signed, 86400})),
         check({erlang_token, Alg, D}, {0, json(D) ++ "\n"}, tool(verify_args(Default, Salt, [], Tok)))
     end || Alg <- [sha256, sha384, sha512], D <- token_data()],
    %% OTP 26 atom encoding (minor_version 2) of the same terms.
    [begin
         Tok = mint(sha256, Default, Salt, term_to_binary({D, Signed, 86400}, [{minor_version, 2}])),
         check({erlang_token_otp26, D}, {0, json(D) ++ "\n"}, tool(verify_args(Default, Salt, [], Tok)))
     end || D <- token_data()],
    %% Non-default key options.
    [begin
         Tok = mint(Alg, KO, <<"other salt">>, term_to_binary({42, Signed, 60})),
         check({key_opts, Alg, KO}, {0, "42\n"}, tool(verify_args(KO, <<"other salt">>, [], Tok))),
         check({key_opts_mismatch, Alg, KO}, {1, "invalid\n"},
               tool(verify_args(Default, <<"other salt">>, [], Tok)))
     end || Alg <- [sha256, sha512], KO <- [{2, 64, sha512}, {5, 48, sha384}, {1, 16, sha256}]],
    %% Legacy shapes, stored max_age forms, expiry, the future check.
    V = fun(Term, Extra) -> tool(verify_args(Default, Salt, Extra, mint(sha256, Default, Salt, term_to_binary(Term)))) end,
    check(legacy_tuple, {0, "42\n"}, V({42, Signed}, [])),
    check(legacy_map, {0, "42\n"}, V(#{data => 42, signed => Signed}, [])),
    check(legacy_map_binary_keys, {1, "invalid\n"}, V(#{<<"data">> => 42, <<"signed">> => Signed}, [])),
    check(stored_infinity, {0, "42\n"}, V({42, ?NOW + 10000000, infinity}, [])),
    check(stored_float, {0, "42\n"}, V({42, ?NOW - 2500, 2.5}, [])),
    check(stored_float_expired, {1, "expired\n"}, V({42, ?NOW - 2501, 2.5}, [])),
    check(expiry_equality, {0, "42\n"}, V({42, ?NOW - 50000, 50}, [])),
    check(expired, {1, "expired\n"}, V({42, ?NOW - 100000, 50}, [])),
    check(expired_override, {0, "42\n"}, V({42, ?NOW - 100000, 50}, ["--max-age", "1000"])),
    check(override_shortens, {1, "expired\n"}, V({42, ?NOW - 100000, 86400}, ["--max-age", "60"])),
    check(future, {1, "invalid\n"}, V({42, ?NOW + 100000, 86400}, [])),
    check(future_infinity, {0, "42\n"}, V({42, ?NOW + 100000, 86400}, ["--max-age", "infinity"])),
    check(future_zero, {1, "expired\n"}, V({42, ?NOW + 100000, 86400}, ["--max-age", "0"])),
    check(stored_zero, {1, "expired\n"}, V({42, ?NOW, 0}, [])),
    check(stored_negative, {1, "expired\n"}, V({42, ?NOW, -5}, [])),
    check(shape_4_tuple, {1, "invalid\n"}, V({42, Signed, 86400, x}, [])),
    check(bignum_over_limit, {1, "invalid\n"}, V({1 bsl 600, Signed, 86400}, [])),
    %% Data with no JSON form still verifies (Phoenix.Token.verify gives
    %% {:ok, data}); verify prints an Elixir-like text form.
    Pid = list_to_pid("<0.77.0>"),
    Ref = make_ref(),
    "#Ref<0." ++ RefWords = ref_to_list(Ref),
    check(pid_data, {0, "#PID<nonode@nohost.77.0>\n"}, V({Pid, Signed, 86400}, [])),
    check(improper_list, {0, "[1 | 2]\n"}, V({[1 | 2], Signed, 86400}, [])),
    check(improper_nested, {0, "%{:a => [:x, \"y\" | 3.5]}\n"}, V({#{a => [x, <<"y">> | 3.5]}, Signed, 86400}, [])),
    check(reference_data, {0, "{:ok, #Reference<nonode@nohost." ++ RefWords ++ "}\n"}, V({{ok, Ref}, Signed, 86400}, [])),
    check(export_data, {0, "&:lists.map/2\n"}, V({fun lists:map/2, Signed, 86400}, [])),
    check(bitstring_data, {0, "<<1, 5::size(3)>>\n"}, V({<<1, 5:3>>, Signed, 86400}, [])),
    check(pid_in_signed_refused, {1, "invalid\n"}, V({42, Pid, 86400}, [])),
    %% Tampering and the wrong key.
    Tok = mint(sha256, Default, Salt, term_to_binary({42, Signed, 86400})),
    [P1, P2, P3] = binary:split(Tok, <<".">>, [global]),
    Other = mint(sha256, Default, Salt, term_to_binary({43, Signed, 86400})),
    [_, O2, _] = binary:split(Other, <<".">>, [global]),
    check(swapped_payload, {1, "invalid\n"}, tool(verify_args(Default, Salt, [], <<P1/binary, ".", O2/binary, ".", P3/binary>>))),
    check(hs512_header, {1, "invalid\n"}, tool(verify_args(Default, Salt, [], <<"SFM1MTI.", P2/binary, ".", P3/binary>>))),
    check(padded_sig, {0, "42\n"}, tool(verify_args(Default, Salt, [], <<Tok/binary, "=">>))),
    check(wrong_salt, {1, "invalid\n"}, tool(verify_args(Default, <<"user auth">>, [], Tok))),
    ok.

%% ---- (c) tokens signed by phxd ----

phxd_tokens_verify_in_erlang() ->
    SignedAt = 1700000000,
    Cases = [{"42", 42}, {"-1", -1}, {"18446744073709551616", 1 bsl 64}, {"\"hello\"", <<"hello">>},
             {"\"Jos\\u00e9\"", <<"José"/utf8>>}, {"null", nil}, {"true", true},
             {"[1,2,3]", [1, 2, 3]}, {"[1,2,300]", [1, 2, 300]}, {"[\"a\"]", [<<"a">>]},
             {"{\"user_id\":42}", #{<<"user_id">> => 42}},
             {"{\"b\":{\"c\":[1.5,null]},\"a\":[]}", #{<<"b">> => #{<<"c">> => [1.5, nil]}, <<"a">> => []}},
             {"1.5", 1.5}, {"1e300", 1.0e300}, {"[]", []}, {"{}", #{}}],
    MaxAges = [{[], 86400}, {["--max-age", "3600"], 3600}, {["--max-age", "infinity"], infinity},
               {["--max-age", "2.5"], 2.5}, {["--max-age", "0"], 0}],
    KeyOpts = [{[], {1000, 32, sha256}},
               {["--key-iterations", "5", "--key-length", "64", "--key-digest", "sha384"], {5, 64, sha384}}],
    [phxd_token(Json, T, MaxArgs, MaxAge, KArgs, KO, SignedAt, Latin1)
     || {Json, T} <- Cases, {MaxArgs, MaxAge} <- MaxAges, {KArgs, KO} <- KeyOpts,
        Latin1 <- [false, true]],
    ok.

phxd_token(Json, T, MaxArgs, MaxAge, KArgs, {Iter, Len, KDigest}, SignedAt, Latin1) ->
    Args = ["token", "sign", "--secret-key-base", ?SECRET, "--salt", "user socket",
            "--signed-at", integer_to_list(SignedAt)] ++ MaxArgs ++ KArgs ++
           [A || A <- ["--latin1-atoms"], Latin1] ++ [Json],
    Name = {phxd_token, Json, MaxAge, KDigest, Latin1},
    case tool(Args) of
        {0, Out} ->
            Token = list_to_binary(string:trim(Out)),
            case binary:split(Token, <<".">>, [global]) of
                [<<"SFMyNTY">> = H, P, S] ->
                    Key = crypto:pbkdf2_hmac(KDigest, <<?SECRET>>, <<"user socket">>, Iter, Len),
                    Mac = crypto:mac(hmac, sha256, Key, <<H/binary, ".", P/binary>>),
                    check({Name, mac}, true, crypto:hash_equals(Mac, unb64url(S))),
                    Payload = unb64url(P),
                    Want = {T, SignedAt * 1000, MaxAge},
                    check({Name, term}, true, binary_to_term(Payload, [safe]) =:= Want),
                    Bytes = case Latin1 of
                                true -> term_to_binary(Want);
                                false -> term_to_binary(Want, [{minor_version, 2}])
                            end,
                    check({Name, bytes}, hex(Bytes), hex(Payload));
                Parts ->
                    check({Name, parts}, 3, length(Parts))
            end;
        Other ->
            check({Name, sign}, ok, Other)
    end.

%% ---- (d) Phoenix.PubSub's Redis adapter ----

-define(SELF, <<"phxd@host">>).
-define(CS, 'Elixir.Phoenix.Channel.Server').

bcast(T, E, P) ->
    #{'__struct__' => 'Elixir.Phoenix.Socket.Broadcast', topic => T, event => E, payload => P}.

%% Endpoint.broadcast(T, E, P) on node Node, as the adapter publishes it.
adapter_msg(Mode, Node, T, E, P) -> {3, Mode, Node, T, bcast(T, E, P), ?CS}.

pps_payloads() ->
    [#{},
     #{<<"body">> => <<"hello">>},
     #{<<"a">> => #{<<"b">> => #{<<"c">> => [1, 2, #{<<"d">> => []}]}}},
     #{user_id => 42, name => <<"José"/utf8>>, admin => true},
     #{<<"n">> => nil, <<"t">> => true, <<"f">> => false, <<"atom">> => ok, <<"mod">> => 'Elixir.Foo'},
     #{<<"big">> => 123456789012345678901234567890, <<"neg">> => -(1 bsl 64), <<"i">> => -7},
     #{<<"f">> => 1.5, <<"g">> => 0.1, <<"h">> => 1.0e20, <<"z">> => -0.0, <<"e">> => 1.0e-7},
     #{<<"u">> => <<"😀 ünïcødé \"q\" \\ \n\t"/utf8, 1, 31, 127>>, <<"ключ"/utf8>> => <<"значение"/utf8>>},
     #{<<"list">> => [1, <<"two">>, 3.0, nil, [true]], <<"chars">> => "abc", <<"bytes">> => [0, 255]},
     #{1 => <<"int key">>, 2.5 => <<"float key">>, a => 1, <<"a">> => 2},
     maps:from_list([{integer_to_binary(I), I} || I <- lists:seq(1, 20)])].

pps_hex(Term) -> hex(term_to_binary(Term)).

pps_decode(Term, Opts) -> tool(["pps-decode", "--self", binary_to_list(?SELF), hex(term_to_binary(Term, Opts))]).

deliver_line(Kind, Mode, T, E, Json) ->
    Kind ++ "\t" ++ atom_to_list(Mode) ++ "\t" ++ unicode:characters_to_list(T) ++ "\t" ++
        unicode:characters_to_list(E) ++ "\t" ++ Json ++ "\n".

phoenix_pubsub_to_phxd() ->
    Encodings = [[], [compressed], [{compressed, 9}], [{minor_version, 2}],
                 [{minor_version, 2}, {compressed, 6}]],
    T = <<"room:lobby">>,
    %% Every payload, every encoding, from another node.
    [check({pps_payload, P, Opts}, {0, deliver_line("deliver", except, T, <<"new_msg">>, "json\t" ++ jason(P))},
           pps_decode(adapter_msg(except, <<"elixir@a">>, T, <<"new_msg">>, P), Opts))
     || P <- pps_payloads(), Opts <- Encodings],
    %% A payload big enough that [compressed] really compresses it.
    Big = #{<<"items">> => [#{<<"id">> => I, <<"name">> => <<"item">>} || I <- lists:seq(1, 300)]},
    BigMsg = adapter_msg(except, <<"elixir@a">>, T, <<"e">>, Big),
    check(pps_big_is_compressed, <<131, 80>>, binary:part(term_to_binary(BigMsg, [compressed]), 0, 2)),
    check(pps_big_compressed, {0, deliver_line("deliver", except, T, <<"e">>, "json\t" ++ jason(Big))},
          pps_decode(BigMsg, [compressed])),
    check(pps_inflate_bound, {1, "error PHX_ERR_LIMIT\n"},
          tool(["pps-decode", "--max-inflated", "1000", hex(term_to_binary(BigMsg, [compressed]))])),
    %% {:binary, data}: a binary frame's bytes.
    Bin = <<0, 1, 2, 255, "raw">>,
    check(pps_binary, {0, deliver_line("deliver", except, T, <<"bin">>, "binary\t" ++ hex(Bin))},
          pps_decode(adapter_msg(except, <<"elixir@a">>, T, <<"bin">>, {binary, Bin}), [])),
    check(pps_binary_compressed, {0, deliver_line("deliver", except, T, <<"bin">>, "binary\t" ++ hex(Bin))},
          pps_decode(adapter_msg(except, <<"elixir@a">>, T, <<"bin">>, {binary, Bin}), [compressed])),
    %% :except and :only with phxd's node name (a binary, or an atom of the
    %% same text) and with others.
    P1 = #{<<"k">> => 1},
    Ok = fun(Mode) -> {0, deliver_line("deliver", Mode, T, <<"e">>, "json\t{\"k\":1}")} end,
    check(pps_except_other, Ok(except), pps_decode(adapter_msg(except, <<"elixir@a">>, T, <<"e">>, P1), [])),
    check(pps_except_other_atom, Ok(except), pps_decode(adapter_msg(except, 'elixir@a', T, <<"e">>, P1), [])),
    check(pps_except_self, {0, "not_for_us except_self\n"}, pps_decode(adapter_msg(except, ?SELF, T, <<"e">>, P1), [])),
    check(pps_except_self_atom, {0, "not_for_us except_self\n"}, pps_decode(adapter_msg(except, 'phxd@host', T, <<"e">>, P1), [])),
    check(pps_only_self, Ok(only), pps_decode(adapter_msg(only, ?SELF, T, <<"e">>, P1), [])),
    check(pps_only_self_atom, Ok(only), pps_decode(adapter_msg(only, 'phxd@host', T, <<"e">>, P1), [])),
    check(pps_only_other, {0, "not_for_us only_other\n"}, pps_decode(adapter_msg(only, <<"elixir@a">>, T, <<"e">>, P1), [])),
    check(pps_only_other_atom, {0, "not_for_us only_other\n"}, pps_decode(adapter_msg(only, 'elixir@a', T, <<"e">>, P1), [])),
    %% Other traffic on the channel: Presence's tracker (dispatcher
    %% Phoenix.PubSub, pids and references inside), a plain
    %% PubSub.broadcast, a non-Broadcast message through Channel.Server,
    %% another version, not a 6-tuple.
    Pid = self(),
    Heartbeat = {pub, heartbeat, {<<"elixir@a">>, 1700000000000},
                 {state, #{Pid => {make_ref(), [{<<"room:1">>, <<"42">>, #{online_at => 1}}]}}, [Pid]},
                 #{<<"elixir@a">> => 3}},
    check(pps_presence, {0, "not_for_us dispatcher\n"},
          pps_decode({3, except, <<"elixir@a">>, <<"phx_presence:MyAppWeb.Presence">>, Heartbeat, 'Elixir.Phoenix.PubSub'}, [])),
    check(pps_presence_compressed, {0, "not_for_us dispatcher\n"},
          pps_decode({3, except, <<"elixir@a">>, <<"phx_presence:MyAppWeb.Presence">>, Heartbeat, 'Elixir.Phoenix.PubSub'}, [compressed])),
    check(pps_presence_only_self, {0, "not_for_us dispatcher\n"},
          pps_decode({3, only, ?SELF, <<"phx_presence:MyAppWeb.Presence">>, {pub, transfer_req, make_ref(), {<<"x">>, 1}, #{}}, 'Elixir.Phoenix.PubSub'}, [])),
    check(pps_plain_pubsub, {0, "not_for_us dispatcher\n"},
          pps_decode({3, except, <<"elixir@a">>, T, {new_msg, Pid, #{<<"a">> => 1}}, 'Elixir.Phoenix.PubSub'}, [])),
    check(pps_broadcast_other_dispatcher, {0, "not_for_us dispatcher\n"},
          pps_decode({3, except, <<"elixir@a">>, T, bcast(T, <<"e">>, P1), 'Elixir.Phoenix.PubSub'}, [])),
    check(pps_channel_server_other_message, {0, "not_for_us message\n"},
          pps_decode({3, except, <<"elixir@a">>, T, {custom, 1}, ?CS}, [])),
    check(pps_other_struct, {0, "not_for_us message\n"},
          pps_decode({3, except, <<"elixir@a">>, T, #{'__struct__' => 'Elixir.Phoenix.Socket.Message', topic => T}, ?CS}, [])),
    check(pps_vsn_2, {0, "not_for_us vsn\n"},
          pps_decode({2, except, <<"elixir@a">>, T, bcast(T, <<"e">>, P1), ?CS}, [])),
    check(pps_not_a_6_tuple, {0, "not_for_us shape\n"}, pps_decode({1, 2, 3}, [])),
    check(pps_not_a_tuple, {0, "not_for_us shape\n"}, pps_decode([Pid, <<"x">>], [])),
    %% Broadcasts phxd cannot deliver: Jason (or the fastlane) would raise.
    Skip = fun(Name, Why, P) ->
                   check({pps_skip, Name}, {0, "skip " ++ Why ++ "\n"},
                         pps_decode(adapter_msg(except, <<"elixir@a">>, T, <<"e">>, P), []))
           end,
    Skip(tuple, "json", #{<<"t">> => {1, 2}}),
    Skip(pid, "json", #{<<"p">> => Pid}),
    Skip(latin1, "json", #{<<"s">> => <<"caf", 16#e9>>}),
    Skip(latin1_key, "json", #{<<"caf", 16#e9>> => 1}),
    Skip(struct_in_payload, "json", #{<<"at">> => #{'__struct__' => 'Elixir.Date', year => 2024, month => 1, day => 2, calendar => 'Elixir.Calendar.ISO'}}),
    Skip(improper, "json", #{<<"l">> => [1 | 2]}),
    Skip(list_payload, "payload", [1, 2]),
    Skip(string_payload, "payload", <<"text">>),
    Skip(nil_payload, "payload", nil),
    Skip(binary_not_binary, "payload", {binary, [1, 2]}),
    Skip(tuple_key, "json", #{{a, 1} => 1}),
    check(pps_topic_mismatch, {0, "skip topic_mismatch\n"},
          pps_decode({3, except, <<"elixir@a">>, T, bcast(<<"other">>, <<"e">>, P1), ?CS}, [])),
    check(pps_event_latin1, {0, "skip event\n"},
          pps_decode(adapter_msg(except, <<"elixir@a">>, T, <<"caf", 16#e9>>, P1), [])),
    Long = binary:copy(<<"t">>, 256),
    check(pps_binary_long_topic, {0, "skip binary_header\n"},
          pps_decode(adapter_msg(except, <<"elixir@a">>, Long, <<"e">>, {binary, <<1>>}), [])),
    %% A "disconnect" to a socket id closes it whatever its payload.
    Id = <<"users_socket:42">>,
    check(pps_disconnect, {0, deliver_line("deliver", except, Id, <<"disconnect">>, "json\t{}")},
          pps_decode(adapter_msg(except, <<"elixir@a">>, Id, <<"disconnect">>, #{}), [])),
    check(pps_disconnect_no_json, {0, deliver_line("ids_only", except, Id, <<"disconnect">>, "json\t{}")},
          pps_decode(adapter_msg(except, <<"elixir@a">>, Id, <<"disconnect">>, #{reason => {shutdown, Pid}}), [])),
    %% Malformed bytes: an error, never a crash.
    Good = term_to_binary(adapter_msg(except, <<"elixir@a">>, T, <<"e">>, P1)),
    check(pps_truncated, {1, "error PHX_ERR_INVALID\n"},
          tool(["pps-decode", hex(binary:part(Good, 0, byte_size(Good) - 1))])),
    check(pps_trailing, {1, "error PHX_ERR_INVALID\n"}, tool(["pps-decode", hex(<<Good/binary, 0>>)])),
    <<131, 80, Size:32, Z/binary>> = term_to_binary(BigMsg, [compressed]),
    check(pps_wrong_size, {1, "error PHX_ERR_INVALID\n"},
          tool(["pps-decode", hex(<<131, 80, (Size - 1):32, Z/binary>>)])),
    %% The channel name.
    check(pps_channel, {0, "phx:" ++ atom_to_list('Elixir.MyApp.PubSub.Adapter') ++ "\n"},
          tool(["pps-channel", "MyApp.PubSub"])),
    check(pps_channel_elixir, {0, "phx:Elixir.MyApp.PubSub.Adapter\n"},
          tool(["pps-channel", "Elixir.MyApp.PubSub"])),
    ok.

%% What phxd publishes is binary_to_term'd here and compared with the term
%% Endpoint.broadcast would make (payload as Jason decodes the JSON), and
%% with its term_to_binary bytes.
phxd_to_phoenix_pubsub() ->
    T = <<"room:lobby">>,
    Cases = [{"{}", #{}}, {"", #{}},
             {"{\"body\":\"hello\"}", #{<<"body">> => <<"hello">>}},
             {"{\"a\":{\"b\":[1,2.5,null,true,false]},\"n\":123456789012345678901234567890}",
              #{<<"a">> => #{<<"b">> => [1, 2.5, nil, true, false]}, <<"n">> => 123456789012345678901234567890}},
             {"{\"u\":\"Jos\\u00e9 😀\",\"ключ\":[]}",
              #{<<"u">> => <<"José 😀"/utf8>>, <<"ключ"/utf8>> => []}},
             {"{\"x\":1,\"x\":2,\"e\":1e2,\"l\":[0,255]}",
              #{<<"x">> => 2, <<"e">> => 100.0, <<"l">> => [0, 255]}}],
    [begin
         Want = adapter_msg(except, ?SELF, T, <<"new_msg">>, P),
         pps_encoded({pps_encode, Json}, ["room:lobby", "new_msg", Json], Want)
     end || {Json, P} <- Cases],
    Bin = <<0, 1, 2, 255>>,
    pps_encoded(pps_encode_binary, ["--binary", "room:lobby", "bin", hex(Bin)],
                adapter_msg(except, ?SELF, T, <<"bin">>, {binary, Bin})),
    pps_encoded(pps_encode_disconnect, ["users_socket:42", "disconnect", "{}"],
                adapter_msg(except, ?SELF, <<"users_socket:42">>, <<"disconnect">>, #{})),
    check(pps_encode_not_object, {0, "skip\n"}, tool(["pps-encode", "room:lobby", "e", "[1,2]"])),
    check(pps_encode_client_disconnect, {0, "skip\n"},
          tool(["pps-encode", "--client", "users_socket:42", "disconnect", "{}"])),
    check(pps_encode_bad_json, {1, "error PHX_ERR_INVALID\n"}, tool(["pps-encode", "room:lobby", "e", "{"])),
    ok.

pps_encoded(Name, Args, Want) ->
    %% OTP 26+ atoms by default, OTP 25's with --latin1-atoms.
    [begin
         case tool(["pps-encode", "--node", binary_to_list(?SELF)] ++ Flag ++ Args) of
             {0, Out} ->
                 Bytes = unhex(string:trim(Out)),
                 Got = binary_to_term(Bytes),
                 {3, except, Node, Topic, Msg, Disp} = Got,
                 check({Name, shape}, {?SELF, ?CS, 'Elixir.Phoenix.Socket.Broadcast'},
                       {Node, Disp, maps:get('__struct__', Msg)}),
                 check({Name, struct}, element(5, Want), Msg),
                 check({Name, topic}, Topic, maps:get(topic, Msg)),
                 check({Name, term}, true, Got =:= Want),
                 check({Name, Flag, bytes}, hex(term_to_binary(Want, TOpts)), hex(Bytes));
             Other ->
                 check({Name, Flag}, ok, Other)
         end
     end || {Flag, TOpts} <- [{[], [{minor_version, 2}]}, {["--latin1-atoms"], []}]],
    ok.

%% Jason.encode! of a term (Jason 1.x): nil/true/false, other atoms as
%% strings, floats as :io_lib_format.fwrite_g/1, maps in maps:to_list/1
%% order (term order up to 32 keys), keys through String.Chars.
jason(nil) -> "null";
jason(true) -> "true";
jason(false) -> "false";
jason(A) when is_atom(A) -> jstr(atom_to_binary(A, utf8));
jason(I) when is_integer(I) -> integer_to_list(I);
jason(F) when is_float(F) -> lists:flatten(io_lib_format:fwrite_g(F));
jason(B) when is_binary(B) -> jstr(B);
jason(L) when is_list(L) -> "[" ++ lists:join(",", [jason(E) || E <- L]) ++ "]";
jason(M) when is_map(M) ->
    "{" ++ lists:join(",", [jason_key(K) ++ ":" ++ jason(V) || {K, V} <- maps:to_list(M)]) ++ "}".

jason_key(K) when is_binary(K) -> jstr(K);
jason_key(K) when is_atom(K) -> jstr(atom_to_binary(K, utf8));
jason_key(K) when is_integer(K) -> jstr(integer_to_binary(K));
jason_key(K) when is_float(K) -> jstr(list_to_binary(io_lib_format:fwrite_g(K))).

%% ---- the JSON rendering rules of etf.h, written in Erlang ----

json(nil) -> "null";
json(true) -> "true";
json(false) -> "false";
json(A) when is_atom(A) -> jstr(atom_to_binary(A, utf8));
json(I) when is_integer(I) -> integer_to_list(I);
json(F) when is_float(F) -> float_to_list(F, [short]);
json(B) when is_binary(B) -> jstr(B);
json(T) when is_tuple(T) -> jarr(tuple_to_list(T));
json(L) when is_list(L) -> jarr(L);
json(M) when is_map(M) ->
    %% maps:to_list/1 of a map of up to 32 keys is in term order.
    "{" ++ lists:join(",", [jkey(K) ++ ":" ++ json(V) || {K, V} <- maps:to_list(M)]) ++ "}".

jarr(L) -> "[" ++ lists:join(",", [json(E) || E <- L]) ++ "]".

jkey(K) when is_binary(K) -> jstr(K);
jkey(K) when is_atom(K) -> jstr(atom_to_binary(K, utf8));
jkey(K) when is_integer(K) -> jstr(list_to_binary(integer_to_list(K)));
jkey(K) -> jstr(unicode:characters_to_binary(lists:flatten(json(K)))).

jstr(B) ->
    Chars = case unicode:characters_to_list(B, utf8) of
                L when is_list(L) -> {utf8, L};
                _ -> {latin1, binary_to_list(B)}
            end,
    "\"" ++ lists:flatten([esc(C, Chars) || C <- element(2, Chars)]) ++ "\"".

esc($", _) -> "\\\"";
esc($\\, _) -> "\\\\";
esc($\b, _) -> "\\b";
esc($\t, _) -> "\\t";
esc($\n, _) -> "\\n";
esc($\f, _) -> "\\f";
esc($\r, _) -> "\\r";
esc(C, _) when C < 16#20 -> io_lib:format("\\u~4.16.0B", [C]);
esc(C, {latin1, _}) when C >= 16#80 -> io_lib:format("\\u~4.16.0B", [C]);
esc(C, _) -> C.

%% ---- plumbing ----

%% Runs the tool; returns {ExitStatus, Output} with stdout and stderr
%% together, as a list of bytes.
tool(Args) ->
    Port = open_port({spawn_executable, get(tool)},
                     [{args, Args}, exit_status, binary, stderr_to_stdout, use_stdio]),
    collect(Port, []).

collect(Port, Acc) ->
    receive
        {Port, {data, D}} -> collect(Port, [D | Acc]);
        {Port, {exit_status, S}} ->
            Bin = iolist_to_binary(lists:reverse(Acc)),
            {S, output_string(Bin)}
    after 60000 ->
        {timeout, []}
    end.

%% Output as a string of characters when it is UTF-8 (JSON), else bytes.
output_string(Bin) ->
    case unicode:characters_to_list(Bin, utf8) of
        L when is_list(L) -> L;
        _ -> binary_to_list(Bin)
    end.

check(Name, Want, Got) ->
    put(checks, get(checks) + 1),
    W = norm(Want),
    G = norm(Got),
    case W =:= G of
        true -> ok;
        false ->
            put(failures, get(failures) + 1),
            io:format("FAIL ~0tp~n  want ~0tp~n  got  ~0tp~n", [short(Name), W, G])
    end.

norm({S, L}) when is_integer(S), is_list(L) -> {S, unicode:characters_to_list(unicode:characters_to_binary(lists:flatten(L)))};
norm(L) when is_list(L) -> lists:flatten(L);
norm(X) -> X.

short(T) ->
    S = lists:flatten(io_lib:format("~0tp", [T])),
    case length(S) > 200 of true -> lists:sublist(S, 200) ++ "..."; false -> S end.

hex(B) -> lists:flatten([io_lib:format("~2.16.0b", [X]) || <<X>> <= B]).

unhex(S) -> <<<<(list_to_integer([A, B], 16))>> || <<A, B>> <= list_to_binary(S)>>.

b64url(B) ->
    E = base64:encode(B),
    E1 = binary:replace(binary:replace(E, <<"+">>, <<"-">>, [global]), <<"/">>, <<"_">>, [global]),
    binary:replace(E1, <<"=">>, <<>>, [global]).

unb64url(B) ->
    S = binary:replace(binary:replace(B, <<"-">>, <<"+">>, [global]), <<"_">>, <<"/">>, [global]),
    Pad = case byte_size(S) rem 4 of 0 -> <<>>; 2 -> <<"==">>; 3 -> <<"=">> end,
    base64:decode(<<S/binary, Pad/binary>>).
