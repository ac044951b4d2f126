//! The golden chunker test of format-spec/chunker.md "Golden data": 4 MiB of
//! xorshift64* output chunked with min 16 KiB / avg 64 KiB / max 256 KiB,
//! seed 0, normalization 1. The (length, BLAKE3) list below was generated once
//! with strata and pinned: if this test fails, chunk boundaries changed, which
//! is a format version bump (every existing repository would stop deduplicating
//! against new backups).

use std::io::{self, Read};
use strata::chunker::Chunker;
use strata::repo::config::ChunkerParams;

/// 4 MiB of `xorshift64*` output, state `0x9E3779B97F4A7C15`, little endian.
fn golden_data() -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut out = Vec::with_capacity(4 << 20);
    while out.len() < 4 << 20 {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        out.extend_from_slice(&x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out
}

fn golden_params() -> ChunkerParams {
    ChunkerParams {
        min: 16 << 10,
        avg: 64 << 10,
        max: 256 << 10,
        normalization: 1,
        seed: 0,
    }
}

/// (length, BLAKE3 hex) of every chunk, in order.
#[rustfmt::skip]
const GOLDEN: &[(usize, &str)] = &[
    (67822, "183e465bd999f2601f8c7317eeb6084b6aa95c57b7e0cef2bd23f482270c67e7"),
    (68399, "b8bee19bff3b4bf5dfa40ea71c131769a9c96835288cc58ff1f3db6a162412a5"),
    (19536, "116fc2d91b9f198e2843a83ca23e62d74bdb54fe5dd5ab1ec336287eb922fa23"),
    (69288, "a0b8280992821e75fc7d8d5afcaab76e3a02a68c5bef83f666e6b33bb91da466"),
    (72413, "c60796aeb087254685053d08f0a06a29a23e12715d4b683e2996e29f55063005"),
    (100181, "e5b78f70cb5704c38182fd1f57e0a4684eabe482b4c235866a84f80a93bc7bf9"),
    (123727, "235517b5b0908801915f47b0c25bb2481a553dda0efb3ad6e94ff70dced8495f"),
    (252702, "b2d20c49b2500b36a6d3cf7fd2fb151f3b8bd900723942ce7808e82dbfe5479e"),
    (84700, "674a3859ba4b2602c148932fd7e48b9e39ec3dfd18044e9f404639a6d96c1ba3"),
    (67302, "1b27331c42ca4d1ceb4780dda72d7f95833383e4b10acc2dfa8d35808e09fdf2"),
    (67333, "cb26d20e75c263a1916de892ae6f94c36a760f880512c48f5478e393279354aa"),
    (72853, "79b1e9812661c9d7921d52335374a01b40828b40676adf89703abb028349f79d"),
    (88971, "5ce1c8598964a8b161db298057f5bbdac98da49124bf913d1a6d3504e651f5e1"),
    (67040, "76667958702db9e65d9781c990a1815c363790fab82985769cfc17de1e2784a3"),
    (116100, "bbd6ff7ae38437cafcb0ab8305abda097dbaed942088baabd6acb7eab53531a6"),
    (152872, "1199db0d9d61378a6e7790b06eba5fa1d5c2135797e2a430d78c7c92a851ed41"),
    (104501, "bb72eeb75516200b5f9efe0f70b4cfdf132c7c471a04e128182c685ba7f4d73d"),
    (88879, "2f6727cea79865e28c140d4c756101dd439006823e748f83bc6f0348bf05f305"),
    (69534, "97b95b5d273b14754025d7baac8ed03b1f713b3d0e01894150600e7cfde01aea"),
    (94230, "eaf4e7a12000d647a1e6fea8ce0e345b40530f5671e5098a0364169f26542f6a"),
    (55841, "3f7926ffad5a7f65bbfc60fe096f01ac1c94f76d29eee73012d8e0439463e11c"),
    (82700, "f2a34c365acb037acdf09bb7de91abf4230e31e8c10ba40050d17059b78d7d81"),
    (143020, "816dd867a4d5b200e922530ddddcca51051a230c94ce675d34c3d272ed379d7b"),
    (90058, "faf7cc508dad0302f342b0dfb3809bdad8e33a0c39efa87ef54b388770aecfe0"),
    (105186, "d63f44f40476ea38bbdf77867ae46deeee9bfee65ae50a20e93a317e71026d47"),
    (34590, "bc5376f27352041f96f24bf099b0b325c7d5883beba45bba61bd90e058ed7c42"),
    (83450, "34e3f992cd609e2cef403308492c6182cc41841265af5f02efc0a363d64c3d7d"),
    (80914, "231b2b6dc0c29cc4a6a538b8e29caed7e5d50c271dc6ca17c1a9d2060deff683"),
    (60370, "a693c0af172431913cdb380bdc022661063c7b09206b0f2923322e26619c674a"),
    (146524, "12117ecca8532d0aeb121b1c21371d2063b1d05a2ceff656c494b695930341fa"),
    (48676, "a9f2c4eafe18224eb7ba62495010fa801933da792010c89b7dee2054493bd37b"),
    (67935, "f1440f46b2c1353f7d0a9f3a2c99962d2a3321e1c9e361af354531a44ce7abd1"),
    (85548, "1a21029afa1e9c7deb7b6291ec75c804c868ed010bf07687626928e7d9536a1c"),
    (118743, "83367417a0ed3dadf8087b5fdc180e4d55a54ac10e72007035354677838997d1"),
    (34280, "1ae0bf05cd823488c073645df0e64e99e8734635f52376c5698f46e0cce1a7d2"),
    (144236, "a6ca4d11fb422f4f57160dc70bcb2184ae0d69cf07fa20860baf1224cac24612"),
    (87335, "68e48d5fecd14a2325c6b7236e3541c19c70c3f49bee67f0839095bb10204d8c"),
    (66991, "96459582164113cd29734580921c6782214466247286c6dd9e6ed51bd5ef71b3"),
    (73408, "2732b102762e9547015cd0c0368d76c40db908fc8c82c0e98872e3c9815a7608"),
    (130485, "5de7d672a8f55f6128775f90ed46d62e2b287a28147df536f0593dba94b97e9b"),
    (165189, "15259b903c081e67c435537614858adb3df8da1a2ffd0de7be53660f0cba41b7"),
    (67774, "02d27218441b64f4ddb48d4674998c00ae688d8bc913751379f7ec8c82768cbf"),
    (26905, "f0b73f9599642705f77596fef7130adc230d6197255575b373c1c7e5ff91650a"),
    (91258, "7fd2b4a26eb050181c0db710ce7b977cc135d94d09f6240042318dcfeed4a788"),
    (33846, "571bedcc76d615c8b141af61d43de6e198deaa3f4191660b7efa7f6d8887744c"),
    (80185, "40437fa6696773b57271074dbaa471276380f9a9329069bae9b2d39f81bce480"),
    (16800, "9eadd903f8609f82cbe9122266d8e48beef0249f6238b107561392099a86cafd"),
    (123674, "d75cce876f95d40ec722ad64b89b495d5b5c267d3e5c13ceffdfa8938c7bb4f3"),
];

/// Chunks as `Chunker::stream` (the path backups take) yields them.
fn chunks_of<R: Read>(c: &Chunker, r: R, size_hint: u64) -> Vec<(usize, String)> {
    let mut got = Vec::new();
    let total = c
        .stream(r, size_hint, |ch| -> io::Result<()> {
            got.push((ch.len(), blake3::hash(ch).to_hex().to_string()));
            Ok(())
        })
        .unwrap();
    assert_eq!(total, 4 << 20, "bytes read");
    got
}

/// Chunks from `Chunker::cut` over the whole buffer.
fn chunks_by_cut(c: &Chunker, data: &[u8]) -> Vec<(usize, String)> {
    let mut got = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let n = c.cut(rest);
        got.push((n, blake3::hash(&rest[..n]).to_hex().to_string()));
        rest = &rest[n..];
    }
    got
}

fn assert_golden(got: &[(usize, String)]) {
    for (i, (g, e)) in got.iter().zip(GOLDEN).enumerate() {
        assert_eq!((g.0, g.1.as_str()), *e, "chunk {i} differs");
    }
    assert_eq!(got.len(), GOLDEN.len(), "number of chunks");
}

#[test]
fn golden_data_is_the_specified_stream() {
    let data = golden_data();
    assert_eq!(data.len(), 4 << 20);
    // The first output of xorshift64* from the spec state, little endian.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    assert_eq!(
        data[..8],
        x.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes()
    );
    assert_eq!(GOLDEN.iter().map(|g| g.0).sum::<usize>(), 4 << 20);
}

#[test]
fn chunker_matches_pinned_boundaries_and_ids() {
    let data = golden_data();
    let c = Chunker::new(&golden_params()).unwrap();
    assert_golden(&chunks_of(&c, &data[..], data.len() as u64));
    // a wrong size hint changes buffering, never boundaries
    assert_golden(&chunks_of(&c, &data[..], 0));
    assert_golden(&chunks_of(&c, &data[..], u64::MAX));
    assert_golden(&chunks_by_cut(&c, &data));
}

#[test]
fn boundaries_do_not_depend_on_read_sizes() {
    /// A reader returning short reads of varying sizes.
    struct Jumpy<'a>(&'a [u8], usize);
    impl Read for Jumpy<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            self.1 += 1;
            let n = out.len().min(self.0.len()).min(1 + self.1 * 7919 % 70_001);
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }
    let data = golden_data();
    let c = Chunker::new(&golden_params()).unwrap();
    assert_golden(&chunks_of(&c, Jumpy(&data, 0), 10));
}

#[test]
fn chunker_agrees_with_fastcdc_v2020_directly() {
    // Independent of strata's streaming code: the reference FastCDC v2020
    // iterator (normalization level 1, published gear tables) over the whole
    // buffer yields the same cut points.
    let data = golden_data();
    let got: Vec<usize> = fastcdc::v2020::FastCDC::new(&data, 16 << 10, 64 << 10, 256 << 10)
        .map(|c| c.length)
        .collect();
    let want: Vec<usize> = GOLDEN.iter().map(|g| g.0).collect();
    assert_eq!(got, want);
}

#[test]
fn a_different_seed_moves_the_boundaries() {
    // The seed is part of the format: seed 1 must not give the golden list.
    let data = golden_data();
    let c = Chunker::new(&ChunkerParams {
        seed: 1,
        ..golden_params()
    })
    .unwrap();
    let got = chunks_of(&c, &data[..], data.len() as u64);
    let lens: Vec<usize> = got.iter().map(|g| g.0).collect();
    let want: Vec<usize> = GOLDEN.iter().map(|g| g.0).collect();
    assert_ne!(lens, want);
}
